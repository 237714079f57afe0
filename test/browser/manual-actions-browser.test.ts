/**
 * Acceptance for manual actions in a real Chromium (issue 9): the site owes a manual action
 * (release 2 of local_tally declares it; `upgrade` did not run it); the admin logs in, sees the
 * notice on /admin with a "Run now" button, and clicks it; the action runs (its row is in the
 * database), the notice goes away, and `check` exits 0. Also: GET /admin/checks answers 401 to
 * an anonymous client and the owed list to the admin; with the UI upgrade lock set there is no
 * button and a POST is refused (409) without running anything.
 * Skips (and says so) without PostgreSQL or /usr/bin/chromium.
 */
import pg from 'pg';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactsDir, chromiumAvailable, launchChromium } from '../support/browser.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, REPO, writeBareCore, type SiteDir } from '../support/sites.ts';

const BIN = join(REPO, 'bin', 'outageless.js');
const ADMIN_SECRET = 'manual-actions-admin-secret';
const R1 = 2026010100;
const R2 = 2026020100;

const version = (v: number) => `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_tally', version: ${v}, maturity: 'stable' });
`;
const SCHEMA = `import { defineSchema } from 'outageless';
export default defineSchema({ tables: { local_tally_hits: { columns: { id: { type: 'bigint', autoIncrement: true }, note: { type: 'varchar(50)' } }, primaryKey: ['id'] } } });
`;
const NO_STEPS = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [] });
`;
const MANUAL = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  phase: 'manual', version: ${R2}, id: 'tally_seed',
  description: 'Seed the tally with its first hit', estimate: 'a second',
  async run({ db, log }) {
    await db.insertInto('local_tally_hits').values({ note: 'from the browser' }).execute();
    log('seeded 1 row');
  },
}] });
`;

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

describe.skipIf(!postgresAvailable || !chromiumAvailable)('manual actions on /admin, in Chromium (PostgreSQL)', () => {
  let site: SiteDir;
  let database: ScratchDatabase;
  let client: pg.Client;
  let front: ChildProcess | undefined;
  let output = '';
  let base = '';
  let browser: Browser | undefined;
  const run = (args: readonly string[]) => cli([...args, '--root', site.root, '--database', database.url]);
  const write = async (v: number, upgrade: string) => {
    await site.write('plugins/local/tally/version.ts', version(v));
    await site.write('plugins/local/tally/db/schema.ts', SCHEMA);
    await site.write('plugins/local/tally/db/upgrade.ts', upgrade);
  };

  beforeAll(async () => {
    database = await createScratchDatabase('manual_browser');
    site = await createSiteDir();
    await writeBareCore(site, 2026010100);
    await write(R1, NO_STEPS);
    expect((await run(['upgrade', '--non-interactive'])).code).toBe(0);
    await write(R2, MANUAL);
    const upgraded = await run(['upgrade', '--non-interactive']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    front = spawn(process.execPath, [BIN, 'serve', '--root', site.root, '--database', database.url, '--port', String(port)], {
      env: { ...process.env, OUTAGELESS_ADMIN_SECRET: ADMIN_SECRET, OUTAGELESS_DATABASE_URL: '', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    front.stdout!.on('data', (chunk) => (output += chunk));
    front.stderr!.on('data', (chunk) => (output += chunk));
    const deadline = Date.now() + 30_000;
    while (!(await fetch(`${base}/healthz`).then((res) => res.ok, () => false))) {
      if (front.exitCode !== null || Date.now() > deadline) throw new Error(`the front did not answer /healthz:\n${output}`);
      await sleep(50);
    }
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (front && front.exitCode === null) {
      const exited = new Promise((resolveExit) => front!.once('exit', resolveExit));
      front.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (front.exitCode === null) front.kill('SIGKILL');
    }
    await client?.end();
    await site?.cleanup();
    await database?.drop();
  });

  it('the admin sees the notice, clicks "Run now", the action runs and the notice goes away', async () => {
    const shots = await artifactsDir('manual-actions');
    // The check API is for admins only.
    const anonymous = await fetch(`${base}/admin/checks`, { headers: { accept: 'application/json' } });
    expect(anonymous.status).toBe(401);

    const context = await browser!.newContext({ baseURL: base });
    const page = await context.newPage();
    await page.goto('/admin');
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.getByLabel('Admin secret').fill(ADMIN_SECRET);
    await Promise.all([page.waitForURL((url) => url.pathname === '/admin'), page.getByRole('button', { name: 'Log in' }).click()]);

    const checks = await page.request.get('/admin/checks', { headers: { accept: 'application/json' } });
    expect(checks.status()).toBe(200);
    expect((await checks.json()).owed).toEqual([expect.objectContaining({ kind: 'manual', name: 'local_tally/tally_seed', command: 'outageless manual run local_tally/tally_seed' })]);

    const notice = page.locator('#owed-checks');
    await expect.poll(() => notice.textContent()).toContain('local_tally/tally_seed');
    expect(await notice.textContent()).toContain('Seed the tally with its first hit');
    await page.screenshot({ path: join(shots, '1-notice.png'), fullPage: true });
    expect((await client.query('select count(*)::int as n from local_tally_hits')).rows[0].n).toBe(0);

    await Promise.all([
      page.waitForResponse((response) => response.url() === `${base}/admin` && response.request().isNavigationRequest()),
      page.locator('li[data-owed="local_tally/tally_seed"]').getByRole('button', { name: 'Run now' }).click(),
    ]);
    await page.screenshot({ path: join(shots, '2-after-run.png'), fullPage: true });
    expect(new URL(page.url()).pathname).toBe('/admin');
    expect(await page.locator('#owed-checks').count()).toBe(0);
    expect((await client.query('select note from local_tally_hits')).rows).toEqual([{ note: 'from the browser' }]);
    const log = await client.query("select status from outageless_upgrade_log where step_id = 'tally_seed'");
    expect(log.rows).toEqual([{ status: 'applied' }]);
    const check = await run(['check']);
    expect(check.code, check.stdout).toBe(0);
    await context.close();
  }, 60_000);

  it('under the UI upgrade lock there is no "Run now" and a POST is refused without running anything', async () => {
    // Owe it again (a fresh owed row), then set the UI lock.
    await client.query("insert into outageless_owed_manual (component, step_id, version, description, estimate) values ('local_tally', 'tally_again', $1, 'Again', 'a second')", [R2]);
    // `upgrade --set-ui-upgrade-lock` sets it only along with a pending upgrade: written here as it stores it.
    await client.query(`insert into outageless_flag (name, value) values ('ui_upgrade_lock', 'true') on conflict (name) do update set value = excluded.value, updated_at = now()`);
    expect(JSON.parse((await run(['status', '--json'])).stdout).flags.uiUpgradeLock).toBe(true);
    const context = await browser!.newContext({ baseURL: base });
    const page = await context.newPage();
    await page.goto('/admin');
    await page.getByLabel('Admin secret').fill(ADMIN_SECRET);
    await Promise.all([page.waitForURL((url) => url.pathname === '/admin'), page.getByRole('button', { name: 'Log in' }).click()]);
    // The front learns of the lock by NOTIFY or its next poll.
    await expect.poll(async () => {
      await page.reload();
      return page.locator('#owed-checks').textContent();
    }, { timeout: 10_000 }).toContain('run manual actions from the command line');
    expect(await page.getByRole('button', { name: 'Run now' }).count()).toBe(0);
    // A forged POST with a valid token (taken from the logout form) is still refused.
    const token = await page.locator('input[name="_csrf"]').first().getAttribute('value');
    const refused = await page.request.post('/admin/manual/run', { form: { _csrf: token!, action: 'local_tally/tally_again' } });
    expect(refused.status()).toBe(409);
    expect(await refused.text()).toContain('UI upgrade lock');
    expect((await client.query("select count(*)::int as n from outageless_owed_manual where step_id = 'tally_again'")).rows[0].n).toBe(1);
    expect((await client.query('select count(*)::int as n from local_tally_hits')).rows[0].n).toBe(1);
    await context.close();
  }, 60_000);
});
