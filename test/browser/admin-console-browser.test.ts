/**
 * Acceptance of the admin console (issue 10) in a real Chromium, on PostgreSQL, with two
 * `outageless serve` processes on one site: front A, where the admin works, and front B, a
 * second front that only serves.
 *
 * 1. log in on A;
 * 2. pause local_pausy from the dashboard: its route answers 503 on B;
 * 3. resume it: 200 on B again;
 * 4. deploy release 2 (a class-none step that waits for the test), restart A on it, and
 *    confirm the online upgrade: the confirmation page says online, the progress is live
 *    (running with the step's first line, B serving; then, let go, succeeded);
 * 5. find the run in /admin/history.
 *
 * Screenshots go to test-artifacts/admin-console/. Skips (and says so) without PostgreSQL or
 * /usr/bin/chromium.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactsDir, chromiumAvailable, launchChromium } from '../support/browser.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { startFront, type FrontProcess } from '../support/fronts.ts';
import { cli, createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';

const ADMIN_SECRET = 'admin-console-browser-secret';
const V1 = 2026010100;
const V2 = 2026020100;

const version = (v: number, release: string) => `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_pausy', version: ${v}, release: '${release}', maturity: 'stable', maintenance: { disableable: true } });
`;
const SCHEMA = `import { defineSchema } from 'outageless';
export default defineSchema({ tables: { local_pausy_note: { columns: { id: { type: 'bigint', autoIncrement: true }, note: { type: 'varchar(50)' } }, primaryKey: ['id'] } } });
`;
const NO_STEPS = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [] });
`;
/**
 * Release 2: a class-none step that waits until the file PAUSY_SIGNAL names exists, so the test
 * sees the run going on (and the other front serving) before it lets the step finish.
 */
const SLOW_STEP = `import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  version: ${V2}, id: 'pausy_note', description: 'Note the upgrade', outage: 'none',
  async run({ db, log }) {
    const signal = process.env.PAUSY_SIGNAL;
    if (!signal) throw new Error('PAUSY_SIGNAL is not set');
    log('noting the upgrade');
    for (let waited = 0; !existsSync(signal); waited += 25) {
      if (waited > 60_000) throw new Error('the test never let the step go on');
      await sleep(25);
    }
    await db.insertInto('local_pausy_note').values({ note: 'release 2' }).execute();
    log('noted');
  },
}] });
`;
const routes = (release: string) => `export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'local_pausy', release: '${release}' }));
}
`;

describe.skipIf(!postgresAvailable || !chromiumAvailable)('admin console in Chromium, two fronts, PostgreSQL', () => {
  let site: SiteDir;
  let database: ScratchDatabase;
  let client: pg.Client;
  let frontA: FrontProcess | undefined;
  let frontB: FrontProcess | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  let shots: string;
  let signal: string;
  const serve = () => startFront({ root: site.root, database: database.url, env: { OUTAGELESS_ADMIN_SECRET: ADMIN_SECRET, PAUSY_SIGNAL: signal }, readyTimeoutMs: 60_000 });
  const write = async (v: number, release: string, upgrade: string) => {
    await site.write('plugins/local/pausy/version.ts', version(v, release));
    await site.write('plugins/local/pausy/db/schema.ts', SCHEMA);
    await site.write('plugins/local/pausy/db/upgrade.ts', upgrade);
    await site.write('plugins/local/pausy/index.ts', routes(release));
  };
  /** Polls front B's local_pausy route until it answers `status` (B learns of changes through the database). */
  const onB = async (status: number) => {
    const deadline = Date.now() + 10_000;
    let last = 0;
    while (Date.now() < deadline) {
      last = (await fetch(`${frontB!.url}/local_pausy/`)).status;
      if (last === status) return last;
      await sleep(100);
    }
    return last;
  };
  const row = () => page.locator('tr[data-component="local_pausy"]');

  beforeAll(async () => {
    shots = await artifactsDir('admin-console');
    database = await createScratchDatabase('admin_console_browser');
    site = await createSiteDir();
    signal = join(site.root, 'pausy-go-on');
    await writeBareCore(site, V1);
    await write(V1, '1.0', NO_STEPS);
    const installed = await cli(['upgrade', '--non-interactive', '--root', site.root, '--database', database.url]);
    expect(installed.code, installed.stderr).toBe(0);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    [frontA, frontB] = await Promise.all([serve(), serve()]);
    browser = await launchChromium();
    context = await browser.newContext();
    page = await context.newPage();
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await Promise.all([frontA?.stop(), frontB?.stop()]);
    await client?.end();
    await site?.cleanup();
    await database?.drop();
  });

  it('1. logs in on front A', async () => {
    await page.goto(`${frontA!.url}/admin`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.getByLabel('Admin secret').fill(ADMIN_SECRET);
    await Promise.all([page.waitForURL((url) => url.pathname === '/admin'), page.getByRole('button', { name: 'Log in' }).click()]);
    await expect.poll(() => row().locator('td[data-state]').getAttribute('data-state')).toBe('normal');
    expect(await row().textContent()).toContain('1.0');
    // Both fronts are listed, URL first.
    const fronts = await page.locator('#fronts tbody tr').allTextContents();
    expect(fronts.some((text) => text.startsWith(`${frontA!.url} (`) && text.includes(`pid ${frontA!.pid}`) && text.includes('this front'))).toBe(true);
    expect(fronts.some((text) => text.startsWith(`${frontB!.url} (`) && text.includes(`pid ${frontB!.pid}`))).toBe(true);
    // The local-time script has rewritten the times: local time and an age, UTC kept in the title.
    const time = page.locator('#fronts time').first();
    await expect.poll(() => time.getAttribute('data-local')).toBe('true');
    expect(await time.textContent()).toMatch(/ago|now|in \d/);
    expect(await time.getAttribute('title')).toMatch(/ UTC$/);
    await page.screenshot({ path: join(shots, '1-dashboard.png'), fullPage: true });
  }, 60_000);

  it('2. pauses local_pausy: its route answers 503 on front B', async () => {
    expect(await onB(200)).toBe(200);
    await Promise.all([page.waitForURL((url) => url.pathname === '/admin'), row().getByRole('button', { name: 'Pause' }).click()]);
    await expect.poll(() => row().locator('td[data-state]').getAttribute('data-state')).toBe('paused');
    expect(await onB(503)).toBe(503);
    expect((await client.query("select state from outageless_component_state where component = 'local_pausy'")).rows).toEqual([{ state: 'maintenance' }]);
    expect(await page.locator('#recent-actions tbody tr').first().getAttribute('data-action')).toBe('pause');
    await page.screenshot({ path: join(shots, '2-paused.png'), fullPage: true });
  }, 60_000);

  it('3. resumes it: 200 on front B again', async () => {
    await Promise.all([page.waitForURL((url) => url.pathname === '/admin'), row().getByRole('button', { name: 'Resume' }).click()]);
    await expect.poll(() => row().locator('td[data-state]').getAttribute('data-state')).toBe('normal');
    expect(await onB(200)).toBe(200);
    const logged = await client.query("select actor, action, target, outcome from outageless_admin_action order by id");
    expect(logged.rows).toEqual([
      { actor: 'web', action: 'pause', target: 'local_pausy', outcome: 'done' },
      { actor: 'web', action: 'resume', target: 'local_pausy', outcome: 'done' },
    ]);
    await page.screenshot({ path: join(shots, '3-resumed.png'), fullPage: true });
  }, 60_000);

  let runId = '';

  it('4. confirms an online upgrade and watches its live progress while front B serves', async () => {
    await write(V2, '1.1', SLOW_STEP);
    // A front reads its code at start: a deploy restarts it (B keeps release 1).
    expect((await frontA!.stop()).code).toBe(0);
    frontA = await serve();
    await page.goto(`${frontA.url}/admin`);
    if (new URL(page.url()).pathname === '/admin/login') {
      await page.getByLabel('Admin secret').fill(ADMIN_SECRET);
      await Promise.all([page.waitForURL((url) => url.pathname.startsWith('/admin/upgrade')), page.getByRole('button', { name: 'Log in' }).click()]);
    }
    // A pending upgrade sends the dashboard to the upgrade page; class none: the green banner.
    expect(new URL(page.url()).pathname).toBe('/admin/upgrade');
    const prompt = page.locator('#upgrade-prompt');
    expect(await prompt.getAttribute('class')).toContain('no-maintenance');
    expect(await prompt.textContent()).toContain('It needs no maintenance');
    await page.screenshot({ path: join(shots, '4a-upgrade-pending.png'), fullPage: true });

    await Promise.all([page.waitForURL((url) => url.pathname === '/admin/upgrade/confirm'), page.locator('#upgrade-now').click()]);
    expect(await page.locator('#upgrade-mode').getAttribute('data-mode')).toBe('online');
    await page.screenshot({ path: join(shots, '4b-confirm.png'), fullPage: true });

    await Promise.all([page.waitForURL((url) => url.pathname === '/admin/upgrade' && url.searchParams.has('run')), page.locator('#confirm-upgrade').click()]);
    runId = new URL(page.url()).searchParams.get('run')!;
    expect(runId).toMatch(/\S/);
    const outcome = page.locator('#upgrade-outcome');
    // Live: the step waits for the test, so the page shows the run going on, and B serves meanwhile.
    expect(await outcome.textContent()).toBe('running');
    await expect.poll(() => page.locator('#upgrade-progress').textContent(), { timeout: 20_000 }).toContain('noting the upgrade');
    expect(await outcome.textContent()).toBe('running');
    expect((await fetch(`${frontB!.url}/local_pausy/`)).status).toBe(200);
    await page.screenshot({ path: join(shots, '4c-progress.png'), fullPage: true });
    await writeFile(signal, 'go on');
    await expect.poll(() => page.locator('#upgrade-outcome').textContent(), { timeout: 30_000 }).toBe('succeeded');
    expect(await page.locator('#upgrade-progress').textContent()).toContain('noted');
    expect((await client.query('select note from local_pausy_note')).rows).toEqual([{ note: 'release 2' }]);
    expect((await client.query("select version from outageless_component where component = 'local_pausy'")).rows).toEqual([{ version: String(V2) }]);
    await page.screenshot({ path: join(shots, '4d-succeeded.png'), fullPage: true });
  }, 120_000);

  it('5. sees the run in the history', async () => {
    expect(runId).not.toBe('');
    await page.goto(`${frontA!.url}/admin`);
    await Promise.all([page.waitForURL((url) => url.pathname === '/admin/history'), page.locator('#admin-nav').getByRole('link', { name: 'History' }).click()]);
    const run = page.locator(`#upgrade-history tr[data-run="${runId}"]`);
    expect(await run.count()).toBe(1);
    expect(await run.locator('td[data-status]').getAttribute('data-status')).toBe('succeeded');
    expect(await run.textContent()).toContain('local_pausy');
    await page.screenshot({ path: join(shots, '5-history.png'), fullPage: true });
  }, 60_000);
});
