/**
 * The admin upgrade confirmation (issue 10): "Upgrade now" leads to a page with the plan, its
 * class and the mode, and the confirmed POST runs in that mode: online for a `none` plan (no
 * maintenance: every route stays 200 while it runs), staged for `component` (only the
 * component answers 503), maintenance for `site`. The running upgrade's banner says "retry
 * later" only in maintenance mode. Refusals: UI lock, another upgrade, a plan changed since
 * the page, a form without a plan. PostgreSQL, Fastify `inject`; each run's step waits on an
 * advisory lock the test holds, so the assertions happen while it runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { discoverSite } from '../../src/component/discover.ts';
import type { SiteDatabase } from '../../src/database/open.ts';
import { UPGRADING_MESSAGE } from '../../src/runtime/guard.ts';
import { setUiUpgradeLock } from '../../src/state/flags.ts';
import { readInstalled } from '../../src/state/installed.ts';
import { readUpgradeRuns } from '../../src/state/upgrade-history.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import type { SiteDir } from '../support/sites.ts';
import { postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { Client, installHistorySite, removeHistorySite, startHistoryFront, csrfToken, holdWaitLock, planField, waitFor, waitVersion, writeHistorySite, type StepClass } from '../support/history-site.ts';

if (!postgresAvailable) console.warn('[admin-upgrade-modes] PostgreSQL unavailable: these tests are SKIPPED.');

describe.skipIf(!postgresAvailable)('admin upgrade: confirmation and mode (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  const fronts: FastifyInstance[] = [];
  let release = 0;

  /** A front on the code now on disk (fronts read their code once, at start). */
  async function startFront(): Promise<FastifyInstance> {
    return startHistoryFront({ scratch, site, database }, fronts);
  }

  /** Deploys the next release of local_wait with a step of `outage`, and a front running it. */
  async function nextRelease(outage: StepClass, options: { wait?: boolean; pre?: boolean } = {}) {
    release += 1;
    await writeHistorySite(site, { n: release, outage, wait: options.wait ?? true, ...(options.pre ? { pre: true } : {}) });
    const app = await startFront();
    const admin = new Client(app);
    await admin.login();
    return { app, admin, visitor: new Client(app) };
  }

  beforeAll(async () => {
    ({ scratch, site, database } = await installHistorySite('admin_upgrade_modes'));
  });
  afterEach(async () => {
    for (const app of fronts.splice(0)) await app.close();
  });
  afterAll(async () => {
    await removeHistorySite({ scratch, site, database });
  });

  /**
   * Confirms on the page and checks the mode it announced, then, while the step waits,
   * runs `during`; afterwards the run must have succeeded in `mode`.
   */
  async function confirmAndRun(admin: Client, mode: 'online' | 'staged' | 'maintenance', during: () => Promise<void>) {
    const upgradePage = await admin.get('/admin/upgrade');
    expect(upgradePage.body).toMatch(/<form method="get" action="\/admin\/upgrade\/confirm" id="upgrade-form"><button class="primary" type="submit" id="upgrade-now">Upgrade now<\/button>/);
    const confirm = await admin.get('/admin/upgrade/confirm');
    expect(confirm.statusCode).toBe(200);
    expect(confirm.body).toContain(`id="upgrade-mode" data-mode="${mode}"`);
    expect(confirm.body).toContain('id="upgrade-plan"');
    expect(confirm.body).toContain('id="confirm-upgrade"');

    const held = await holdWaitLock(scratch.url);
    try {
      const started = await admin.post('/admin/upgrade', { _csrf: csrfToken(confirm.body), plan: planField(confirm.body) });
      expect(started.statusCode, started.body).toBe(303);
      const runId = /run=([0-9a-f-]{36})$/.exec(String(started.headers.location))?.[1];
      expect(runId).toBeDefined();
      // The step is waiting: the run is live in the database, in the mode the page promised.
      await waitFor('the waiting step', async () => (await admin.json(`/admin/upgrade/progress?run=${runId}`)).json<{ lines: string[] }>().lines.some((line) => line.includes(`step wait_${release}`) || line.includes('local_wait: upgrading')));
      const progress = (await admin.json(`/admin/upgrade/progress?run=${runId}`)).json<{ running: boolean; run: { mode: string; startedBy: string } }>();
      expect(progress).toMatchObject({ running: true, run: { mode, startedBy: 'web' } });
      await during();
    } finally {
      await held.release();
    }
    let outcome: { running: boolean; outcome: string; error: string | null; lines: string[] } | undefined;
    await waitFor('the run to end', async () => {
      outcome = (await admin.json('/admin/upgrade/progress')).json();
      return !outcome!.running;
    });
    expect(outcome).toMatchObject({ error: null, outcome: 'succeeded' });
    expect(outcome!.lines.at(-1)).toMatch(/^Upgrade complete in/);
    expect((await readInstalled(database.db))?.get('local_wait')?.version).toBe(waitVersion(release));
    const [last] = await readUpgradeRuns(database.db, { limit: 1 });
    expect(last).toMatchObject({ mode, startedBy: 'web', status: 'succeeded' });
  }

  it('a `none` plan runs online: no maintenance, every route 200 while it runs, and the banner does not say retry later', async () => {
    const { app, admin, visitor } = await nextRelease('none');
    await confirmAndRun(admin, 'online', async () => {
      await app.outageless.refresh();
      expect((await database.upgradeLock.holder())?.mode).toBe('online');
      expect(app.outageless.state().flags.maintenance.enabled).toBe(false);
      for (const url of ['/local_other/', '/local_wait/', '/local_flaky/']) expect((await visitor.json(url)).statusCode, url).toBe(200);
      const page = await admin.get('/admin/upgrade');
      expect(page.body).toMatch(/id="upgrade-running" data-mode="online">An online upgrade is running, started by web on /);
      expect(page.body).toContain('The site keeps serving');
      expect(page.body).not.toContain(UPGRADING_MESSAGE);
      expect(page.body).not.toContain('id="upgrade-now"');
      // The page follows the run: its lines and the polling script.
      expect(page.body).toContain('/admin/assets/upgrade-progress.js');
    });
  });

  it('a `component` plan runs staged: only the component answers 503 while its step runs', async () => {
    const { app, admin, visitor } = await nextRelease('component');
    await confirmAndRun(admin, 'staged', async () => {
      await waitFor('local_wait paused', async () => {
        await app.outageless.refresh();
        return (await visitor.json('/local_wait/')).statusCode === 503;
      });
      expect((await visitor.json('/local_wait/')).json()).toMatchObject({ error: { code: 'OUTAGELESS_COMPONENT_MAINTENANCE' } });
      expect((await database.upgradeLock.holder())?.mode).toBe('online');
      expect((await visitor.json('/local_other/')).statusCode).toBe(200);
      const page = await admin.get('/admin/upgrade');
      expect(page.body).toContain('id="upgrade-running" data-mode="staged">An online upgrade is running (staged: components pause one at a time)');
      expect(page.body).not.toContain(UPGRADING_MESSAGE);
    });
    expect((await new Client(fronts.at(-1)!).json('/local_wait/')).statusCode).toBe(200);
  });

  it('a `site` plan runs in maintenance mode: every route 503 "being upgraded" while it runs, and the banner says so', async () => {
    const { app, admin, visitor } = await nextRelease('site');
    const confirm = await admin.get('/admin/upgrade/confirm');
    expect(confirm.body).toContain('class="notice needs-maintenance" id="upgrade-mode" data-mode="maintenance"');
    await confirmAndRun(admin, 'maintenance', async () => {
      await app.outageless.refresh();
      expect((await database.upgradeLock.holder())?.mode).toBe('maintenance');
      expect((await visitor.json('/local_other/')).json()).toMatchObject({ error: { code: 'OUTAGELESS_SITE_UPGRADING' } });
      const page = await admin.get('/admin/upgrade');
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain(`id="upgrade-running" data-mode="maintenance">${UPGRADING_MESSAGE}. A maintenance-mode upgrade is running, started by web`);
    });
  });

  it('refuses with 409 under the UI lock, while another upgrade runs, and when the plan changed; 400 without a plan', async () => {
    const { app, admin } = await nextRelease('none', { wait: false, pre: true });
    const confirm = await admin.get('/admin/upgrade/confirm');
    const form = { _csrf: csrfToken(confirm.body), plan: planField(confirm.body) };
    const before = (await readUpgradeRuns(database.db, { limit: 100 })).length;

    await setUiUpgradeLock(database.db, true);
    try {
      await app.outageless.refresh();
      const locked = await admin.post('/admin/upgrade', form);
      expect(locked.statusCode).toBe(409);
      expect(locked.body).toContain('The UI upgrade lock is set');
      expect((await admin.get('/admin/upgrade/confirm')).statusCode).toBe(409);
    } finally {
      await setUiUpgradeLock(database.db, false);
    }

    const other = await database.upgradeLock.tryAcquire('online');
    expect(other).toBeDefined();
    try {
      await app.outageless.refresh();
      const busy = await admin.post('/admin/upgrade', form);
      expect(busy.statusCode).toBe(409);
      expect(busy.body).toContain('Another upgrade is running');
      // A running upgrade of another process (no row of its own: not started by runUpgrade) is still named.
      expect((await admin.get('/admin/upgrade')).body).toContain('id="upgrade-running" data-mode="online">An online upgrade is running');
    } finally {
      await other!.release();
    }
    await app.outageless.refresh();

    const missing = await admin.post('/admin/upgrade', { _csrf: form._csrf });
    expect(missing.statusCode).toBe(400);
    expect(missing.body).toContain('confirmation page');

    // Another operator runs the pre phase after this page was shown: the plan is not the one confirmed.
    expect((await runUpgrade({ database, code: await discoverSite(site.root), phase: 'pre' })).kind).toBe('upgraded');
    await app.outageless.refresh();
    const changed = await admin.post('/admin/upgrade', form);
    expect(changed.statusCode).toBe(409);
    expect(changed.body).toContain('The plan changed since the confirmation page was shown');
    // Nothing was started by any refusal (the pre phase is the one run since).
    expect((await readUpgradeRuns(database.db, { limit: 100 })).length).toBe(before + 1);
    expect((await readInstalled(database.db))?.get('local_wait')?.version).toBe(waitVersion(release - 1));

    // The fresh page's plan is accepted.
    const again = await admin.get('/admin/upgrade/confirm');
    const started = await admin.post('/admin/upgrade', { _csrf: csrfToken(again.body), plan: planField(again.body) });
    expect(started.statusCode, started.body).toBe(303);
    await waitFor('the run to end', async () => !(await admin.json('/admin/upgrade/progress')).json<{ running: boolean }>().running);
    expect((await readInstalled(database.db))?.get('local_wait')?.version).toBe(waitVersion(release));
  });
});
