/**
 * The whole MDL-65471 test plan (../shared/seeds/002_*.txt, steps 1–37) on PostgreSQL, with
 * the web steps in a real Chromium.
 *
 * - "Container 1" is the real `outageless` binary (`cli(...)`, compiled dist).
 * - "Container 2" is a separate front process, `outageless serve`, on the same site
 *   directory and database. A front discovers its code at startup, so when the plan has
 *   edited code on disk and then visits the browser, the front is restarted first (a real
 *   deploy restarts fronts too).
 * - The plan's `sleep(10000)` in lib/upgradelib.php (steps 21, 34) is a test component,
 *   theme_sleepy, whose upgrade step waits until a signal file exists. It is a theme so that
 *   it upgrades before mod_assign (themes come first), like the sleep that Moodle's
 *   upgrade_noncore() hits before any plugin: cancelling the sleeping upgrade therefore
 *   leaves mod_assign not upgraded, which steps 26–33 depend on. Its step is `outage: 'none'`
 *   so the --no-maintenance upgrade of step 27 runs it too.
 * - "Cancel the upgrade with the cancel command for the OS" is Ctrl+C: SIGINT.
 *
 * Screenshots of every browser step go to test-artifacts/mdl-65471/.
 * Skips (and says so) without PostgreSQL or /usr/bin/chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { artifactsDir, chromiumAvailable, launchChromium } from '../support/browser.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, REPO, type CliResult, type SiteDir } from '../support/sites.ts';

const BIN = join(REPO, 'bin', 'outageless.js');
const ADMIN_SECRET = 'mdl-65471-admin-secret';
const SLEEPY_FROM = 2026020100;
const SLEEPY_TO = 2026020101;

const bumpVersion = (by: number) => (text: string) => text.replace(/version: (\d{10})/, (_, v: string) => `version: ${Number(v) + by}`);
const TASKS = 'plugins/mod/assign/db/tasks.ts';
const editTasks = (text: string) => text.replace("'*/5 * * * *'", "'1 * * * *'");
const revertTasks = (text: string) => text.replace("'1 * * * *'", "'*/5 * * * *'");

// theme_sleepy: the test's stand-in for the plan's `sleep(10000);` in lib/upgradelib.php.
const sleepyVersion = (version: number) => `import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'theme_sleepy',
  version: ${version},
  release: '1.0',
  requires: 2026010100,
  maturity: 'stable',
});
`;
const SLEEPY_NO_STEPS = `import { defineUpgrade } from 'outageless';

export default defineUpgrade({ steps: [] });
`;
const SLEEPY_WITH_SLEEP = `import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';

/** MDL-65471 step 21: the upgrade "sleeps" until the file named by SLEEPY_SIGNAL exists. */
export default defineUpgrade({
  steps: [
    {
      version: ${SLEEPY_TO},
      id: 'sleepy_wait_for_signal',
      description: 'Wait until the test lets the upgrade go on',
      outage: 'none',
      async run({ log }) {
        const signal = process.env.SLEEPY_SIGNAL;
        if (!signal) throw new Error('SLEEPY_SIGNAL is not set');
        // The marker tells the test that the upgrade is inside the "sleep".
        writeFileSync(signal + '.started', String(process.pid));
        log('sleeping until ' + signal + ' exists');
        while (!existsSync(signal)) await sleep(25);
      },
    },
  ],
});
`;
const SLEEPY_ROUTES = `export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'theme_sleepy', release: '1.0' }));
}
`;

interface FrontProcess {
  readonly child: ChildProcess;
  readonly base: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

type RunningCli = ReturnType<typeof cli>;

interface StatusComponent {
  component: string;
  installedVersion: number | null;
}

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

describe.skipIf(!postgresAvailable || !chromiumAvailable)('MDL-65471 test plan, CLI and browser, on PostgreSQL', () => {
  let site: SiteDir;
  let scratch: ScratchDatabase;
  let database: string;
  let signals: string;
  let signal: string;
  let started: string;
  let shots: string;
  let browser: Browser | undefined;
  let front: FrontProcess | undefined;
  /** Code on disk changed since the front started: restart it before the next browser visit. */
  let codeChanged = false;
  /** The upgrade "sleeping" in theme_sleepy (steps 22–25 and 27–29). */
  let sleeping: RunningCli | undefined;
  let sleepingOutput = '';

  // ---- container 1: the CLI ----

  const run = (args: string[], input?: string): RunningCli =>
    cli([...args, '--root', site.root, '--database', database], { env: { SLEEPY_SIGNAL: signal }, ...(input === undefined ? {} : { input }) });
  const statusJson = async () => {
    const result = await run(['status', '--json']);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout);
  };
  const installed = (status: { components: StatusComponent[] }, component: string) =>
    status.components.find((c) => c.component === component)?.installedVersion;
  /** Polls `status --json` until `until` holds (or the time is up) and returns the last one. */
  const statusWhen = async (until: (status: any) => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await statusJson();
      if (until(status) || Date.now() > deadline) return status;
      await sleep(100);
    }
  };

  const editCode = async (path: string, change: (text: string) => string) => {
    await site.edit(path, change);
    codeChanged = true;
  };
  const writeCode = async (path: string, text: string) => {
    await site.write(path, text);
    codeChanged = true;
  };

  /**
   * Starts `upgrade` and returns once its theme_sleepy step is sleeping. The running CLI is
   * wrapped: an async function returning the thenable itself would wait for the CLI to exit.
   */
  const startSleepingUpgrade = async (args: string[]): Promise<{ running: RunningCli }> => {
    await rm(started, { force: true });
    const running = run(['upgrade', ...args], 'y\n');
    sleepingOutput = '';
    running.child.stdout?.on('data', (chunk) => (sleepingOutput += chunk));
    running.child.stderr?.on('data', (chunk) => (sleepingOutput += chunk));
    const deadline = Date.now() + 30_000;
    while (!existsSync(started)) {
      if (running.child.exitCode !== null || running.child.signalCode !== null) {
        const result = await running;
        throw new Error(`the upgrade ended (exit ${result.code}) before it reached the sleep:\n${result.stdout}\n${result.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`the upgrade never reached the sleep:\n${sleepingOutput}`);
      await sleep(25);
    }
    expect(running.child.exitCode).toBeNull();
    return { running };
  };

  /** The plan's "cancel command for the OS": Ctrl+C, SIGINT; SIGTERM only if SIGINT does not stop it. */
  const cancel = async (running: RunningCli): Promise<{ result: CliResult; signal: NodeJS.Signals }> => {
    running.child.kill('SIGINT');
    const stopped = await Promise.race([running, sleep(5000).then(() => undefined)]);
    if (stopped) return { result: stopped, signal: 'SIGINT' };
    console.warn('[mdl-65471] SIGINT did not stop the upgrade within 5 s; sending SIGTERM');
    running.child.kill('SIGTERM');
    return { result: await running, signal: 'SIGTERM' };
  };

  // ---- container 2: the front ----

  const startFront = async (): Promise<FrontProcess> => {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'serve', '--root', site.root, '--database', database, '--port', String(port)], {
      env: { ...process.env, OUTAGELESS_ADMIN_SECRET: ADMIN_SECRET, OUTAGELESS_DATABASE_URL: '', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
      child.on('exit', (code, exitSignal) => resolveExit({ code, signal: exitSignal }));
    });
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the front exited before answering /healthz:\n${output}`);
      const healthy = await fetch(`${base}/healthz`).then((res) => res.ok, () => false);
      if (healthy) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the front did not answer /healthz within 30 s:\n${output}`);
      }
      await sleep(50);
    }
    return { child, base, exited, output: () => output };
  };

  /** SIGTERM: the front closes (in-flight requests finish, it leaves the registry) and exits 0. */
  const stopFront = async (target: FrontProcess) => {
    target.child.kill('SIGTERM');
    const exit = await Promise.race([target.exited, sleep(15_000).then(() => 'still running after 15 s' as const)]);
    if (exit === 'still running after 15 s') target.child.kill('SIGKILL');
    expect(exit, `front output:\n${target.output()}`).toEqual({ code: 0, signal: null });
  };

  /** A deploy: the front restarts so that it runs the code now on disk. */
  const restartFront = async () => {
    const old = front;
    front = undefined;
    if (old) await stopFront(old);
    front = await startFront();
    codeChanged = false;
  };

  // ---- the browser ----

  /**
   * Visits /admin as an anonymous user, is sent to the login page, logs in with the admin
   * secret and returns the logged-in page (wherever /admin sent it).
   */
  const adminPage = async (): Promise<{ context: BrowserContext; page: Page }> => {
    if (codeChanged || !front) await restartFront();
    const context = await browser!.newContext({ baseURL: front!.base });
    const page = await context.newPage();
    await page.goto('/admin');
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.getByLabel('Admin secret').fill(ADMIN_SECRET);
    await Promise.all([
      page.waitForURL((url) => url.pathname !== '/admin/login'),
      page.getByRole('button', { name: 'Log in' }).click(),
    ]);
    return { context, page };
  };

  /**
   * Visits /admin (Moodle's admin/index.php) until `until` holds: the front learns of a CLI
   * change by NOTIFY or, at worst, its next poll (1 s). Returns the last response.
   */
  const visitAdmin = async (page: Page, until: (response: Response) => boolean): Promise<Response> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const response = await page.goto('/admin');
      if (!response) throw new Error('no response for /admin');
      if (until(response) || Date.now() > deadline) return response;
      await sleep(200);
    }
  };
  const pathOf = (response: Response) => new URL(response.url()).pathname;
  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  /** Prompted to upgrade: /admin sends the admin to /admin/upgrade with the plan and "Upgrade now". */
  const expectPrompted = async (page: Page, response: Response) => {
    expect(response.status()).toBe(200);
    expect(pathOf(response)).toBe('/admin/upgrade');
    await expect.poll(() => page.title()).toBe('Upgrade');
    expect(await page.locator('#upgrade-prompt').isVisible()).toBe(true);
    expect(await page.locator('#upgrade-prompt').innerText()).toContain('An upgrade is pending');
    expect(await page.locator('#upgrade-prompt').innerText()).toContain('It needs no maintenance.');
    expect(await page.locator('#upgrade-now').isVisible()).toBe(true);
    expect(await page.locator('#upgrade-now').innerText()).toBe('Upgrade now');
    expect(await page.locator('#ui-locked').count()).toBe(0);
    const assign = page.locator('#upgrade-plan tr[data-component="mod_assign"]');
    expect(await assign.innerText()).toContain('2026020101');
    expect(await assign.locator('td.class-none').count()).toBe(1);
  };

  /**
   * "Can click around as normal": follows every link of the admin navigation (home, each
   * component, upgrade status) and expects a 200 page with the component's content.
   */
  const clickAround = async (page: Page, screenshotPrefix: string) => {
    await page.goto('/admin');
    const links = page.locator('#admin-nav a');
    const count = await links.count();
    expect(count).toBeGreaterThan(5);
    const targets: { href: string; text: string }[] = [];
    for (let i = 0; i < count; i++) {
      targets.push({ href: (await links.nth(i).getAttribute('href'))!, text: await links.nth(i).innerText() });
    }
    expect(targets.map((t) => t.text)).toContain('mod_assign');
    const visited: string[] = [];
    for (const [index, target] of targets.entries()) {
      if (index > 0) await page.goto('/admin');
      const url = new URL(target.href, front!.base).href;
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === url && r.request().isNavigationRequest()),
        page.locator('#admin-nav a').nth(index).click(),
      ]);
      await page.waitForLoadState();
      expect(response.status(), `${target.text} (${target.href})`).toBe(200);
      const body = await page.locator('body').innerText();
      if (target.href === '/') expect(body).toContain('"component":"core"');
      else if (target.href === '/admin/upgrade') expect(await page.title()).toBe('Upgrade');
      else if (target.href === '/admin/history') expect(await page.locator('#upgrade-history').count()).toBe(1);
      else expect(body, target.href).toContain(`"component":"${target.text}"`);
      if (target.text === 'mod_assign') await shot(page, `${screenshotPrefix}-mod_assign`);
      visited.push(target.href);
    }
    return visited;
  };

  beforeAll(async () => {
    site = await createSiteDir(2);
    // theme_sleepy ships with the site (no steps yet), so the prerequisite install records it.
    await site.write('plugins/theme/sleepy/version.ts', sleepyVersion(SLEEPY_FROM));
    await site.write('plugins/theme/sleepy/db/upgrade.ts', SLEEPY_NO_STEPS);
    await site.write('plugins/theme/sleepy/index.ts', SLEEPY_ROUTES);
    scratch = await createScratchDatabase('mdl65471_browser');
    database = scratch.url;
    signals = await mkdtemp(join(tmpdir(), 'outageless-sleepy-'));
    signal = join(signals, 'go-on');
    started = `${signal}.started`;
    shots = await artifactsDir('mdl-65471');

    // Pre-requisite: a clean install sets the initial component hash state.
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    browser = await launchChromium();
    front = await startFront();
  });

  afterAll(async () => {
    // Every clean-up runs even if an earlier one fails; the first failure is reported.
    const problems: unknown[] = [];
    const attempt = async (cleanup: () => Promise<unknown>) => {
      try {
        await cleanup();
      } catch (error) {
        problems.push(error);
      }
    };
    await attempt(async () => {
      const child = sleeping?.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await sleeping;
      }
    });
    await attempt(async () => browser?.close());
    const last = front;
    front = undefined;
    if (last) await attempt(() => stopFront(last));
    await attempt(async () => site?.cleanup());
    await attempt(async () => scratch?.drop());
    if (signals) await attempt(() => rm(signals, { recursive: true, force: true }));
    if (problems.length > 0) throw problems[0];
  });

  it('steps 1–2: a core version bump upgrades after confirmation at the prompt', async () => {
    await editCode('core/version.ts', bumpVersion(1));
    const upgraded = await run(['upgrade'], 'y\n');
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain('Upgrade now? The site goes into maintenance while it runs. [y/N]');
    expect(upgraded.stdout).toContain('Upgrade complete');
    expect(installed(await statusJson(), 'core')).toBe(2026020101);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
  });

  it('steps 3–5: a mod_assign version bump with db/ unchanged is pending (exit 2)', async () => {
    await editCode('plugins/mod/assign/version.ts', bumpVersion(1));
    const pending = await run(['upgrade', '--is-pending']);
    expect(pending.code).toBe(2);
    expect(pending.stdout).toMatch(/mod_assign\s+2026020100 -> 2026020101\s+none/);
  });

  it('steps 6–7: maintenance is NOT required (exit 3), and the upgrade is still pending', async () => {
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(3);
    expect(required.stdout).toContain('code-only change: db/ unchanged');
    expect(required.stdout).toContain('Maintenance is NOT required');
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);
  });

  it('steps 8–9: the admin is prompted to upgrade (and does not do it)', async () => {
    const { context, page } = await adminPage();
    try {
      const response = await visitAdmin(page, (r) => pathOf(r) === '/admin/upgrade');
      await expectPrompted(page, response);
      await shot(page, '09-prompted-to-upgrade');
    } finally {
      await context.close();
    }
    // Visiting the page upgraded nothing.
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);
    expect(installed(await statusJson(), 'mod_assign')).toBe(2026020100);
  });

  it('step 10: --is-maintenance-required --set-ui-upgrade-lock sets the UI lock (exit 3)', async () => {
    const set = await run(['upgrade', '--is-maintenance-required', '--set-ui-upgrade-lock']);
    expect(set.code).toBe(3);
    expect(set.stdout).toContain('UI upgrade lock set.');
    expect((await statusJson()).flags.uiUpgradeLock).toBe(true);
  });

  it('steps 11–12: with the UI lock the admin is NOT prompted to upgrade, and can click around as normal', async () => {
    const { context, page } = await adminPage();
    try {
      const response = await visitAdmin(page, (r) => pathOf(r) === '/admin');
      expect(response.status()).toBe(200);
      expect(pathOf(response)).toBe('/admin');
      expect(await page.title()).toBe('Site administration');
      expect(await page.locator('#upgrade-now').count()).toBe(0);
      expect(await page.locator('#upgrade-prompt').count()).toBe(0);
      expect(await page.locator('#site-flags').innerText()).toContain('set: upgrades are run from the command line');
      expect(await page.locator('main').innerText()).toContain('the upgrade is managed from the command line (UI upgrade lock set)');
      await shot(page, '12-not-prompted-dashboard');

      const visited = await clickAround(page, '12-click-around');
      expect(visited).toEqual(expect.arrayContaining(['/', '/mod_assign/', '/theme_sleepy/', '/admin/upgrade']));

      // The upgrade page itself says the CLI owns the upgrade, and offers no button.
      await page.goto('/admin/upgrade');
      expect(await page.locator('#ui-locked').isVisible()).toBe(true);
      expect(await page.locator('#upgrade-now').count()).toBe(0);
      await shot(page, '12-upgrade-page-ui-locked');
    } finally {
      await context.close();
    }
  });

  it('step 13: --is-maintenance-required --unset-ui-upgrade-lock clears the UI lock (exit 3)', async () => {
    const unset = await run(['upgrade', '--is-maintenance-required', '--unset-ui-upgrade-lock']);
    expect(unset.code).toBe(3);
    expect(unset.stdout).toContain('UI upgrade lock cleared.');
    expect((await statusJson()).flags.uiUpgradeLock).toBe(false);
  });

  it('steps 14–15: the admin IS prompted to upgrade again (and does not do it)', async () => {
    const { context, page } = await adminPage();
    try {
      const response = await visitAdmin(page, (r) => pathOf(r) === '/admin/upgrade');
      await expectPrompted(page, response);
      await shot(page, '15-prompted-again');
    } finally {
      await context.close();
    }
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);
  });

  it('steps 16–18: editing mod_assign db/tasks.ts keeps the upgrade pending (exit 2)', async () => {
    await editCode(TASKS, editTasks);
    const pending = await run(['upgrade', '--is-pending']);
    expect(pending.code).toBe(2);
    expect(pending.stdout).toMatch(/mod_assign\s+2026020100 -> 2026020101\s+site/);
  });

  it('steps 19–20: with db/ changed and nothing vouching for it, maintenance IS required (exit 2)', async () => {
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(2);
    expect(required.stdout).toContain('Maintenance IS required');
    expect(required.stdout).toMatch(/mod_assign: db\/tasks\.ts changed and no pending step or metadata hook vouches for it/);
  });

  it('step 21: the "sleep(10000)" goes in as theme_sleepy\'s upgrade step (class none; maintenance still required)', async () => {
    await writeCode('plugins/theme/sleepy/db/upgrade.ts', SLEEPY_WITH_SLEEP);
    await writeCode('plugins/theme/sleepy/version.ts', sleepyVersion(SLEEPY_TO));
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(2);
    expect(required.stdout).toMatch(new RegExp(`theme_sleepy\\s+${SLEEPY_FROM} -> ${SLEEPY_TO}\\s+none`));
    // Themes upgrade first: the sleep comes before mod_assign, as upgrade_noncore's does.
    expect(required.stdout.indexOf('theme_sleepy')).toBeLessThan(required.stdout.indexOf('mod_assign'));
  });

  it('step 22: the accepted upgrade runs in maintenance mode and sleeps', async () => {
    ({ running: sleeping } = await startSleepingUpgrade([]));
    expect(sleepingOutput).toContain('Upgrade now? The site goes into maintenance while it runs. [y/N]');
    expect(sleepingOutput).toContain('Upgrade lock taken (maintenance mode).');
    expect(sleepingOutput).toContain('theme_sleepy: upgrading');
    const status = await statusJson();
    expect(status.upgradeRunning).toMatchObject({ mode: 'maintenance', pid: sleeping.child.pid });
    expect(status.flags.maintenance.enabled).toBe(true);
  });

  it('steps 23–24: the admin sees the "Site is being upgraded" error message', async () => {
    const { context, page } = await adminPage();
    try {
      const response = await visitAdmin(page, (r) => r.status() === 503);
      expect(response.status()).toBe(503);
      expect(pathOf(response)).toBe('/admin');
      expect(await response.headerValue('retry-after')).toBe('30');
      expect(await page.title()).toBe('Site is being upgraded');
      expect(await page.locator('h1').innerText()).toBe('Site is being upgraded, please retry later');
      expect(await page.locator('#upgrade-now').count()).toBe(0);
      await shot(page, '24-site-is-being-upgraded');

      // The rest of the site is in maintenance too.
      const assign = await page.goto('/mod_assign/');
      expect(assign?.status()).toBe(503);
      expect(await page.locator('h1').innerText()).toBe('Site is being upgraded, please retry later');
      // Admins can follow the running upgrade on the upgrade page.
      const upgradePage = await page.goto('/admin/upgrade');
      expect(upgradePage?.status()).toBe(200);
      expect(await page.locator('#upgrade-running').innerText()).toContain('Site is being upgraded, please retry later');
      expect(await page.locator('#upgrade-now').count()).toBe(0);
      await shot(page, '24-upgrade-page-running');
    } finally {
      await context.close();
    }
    expect(sleeping!.child.exitCode).toBeNull();
  });

  it('step 25: Ctrl+C (SIGINT) cancels the upgrade; no upgrade is running and the site is out of maintenance', async () => {
    const { result, signal: sent } = await cancel(sleeping!);
    console.info(`[mdl-65471] step 25: the upgrade was cancelled with ${sent} (exit ${result.code}, signal ${sleeping!.child.signalCode})`);
    sleeping = undefined;
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain('Upgrade complete');
    // The lock goes with the upgrader's session; the server notices the closed socket.
    const status = await statusWhen((s) => s.upgradeRunning === null);
    expect(status.upgradeRunning).toBeNull();
    expect(status.flags.maintenance.enabled).toBe(false);
    // The sleep came before every other change: nothing was upgraded.
    expect(installed(status, 'mod_assign')).toBe(2026020100);
    expect(installed(status, 'theme_sleepy')).toBe(SLEEPY_FROM);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);
    // The front drops its 503 by itself (no NOTIFY from a killed upgrader: its poll sees it).
    const deadline = Date.now() + 5000;
    let home = await fetch(`${front!.base}/`);
    while (home.status !== 200 && Date.now() < deadline) {
      await sleep(100);
      home = await fetch(`${front!.base}/`);
    }
    expect(home.status).toBe(200);
  });

  it('step 26: reverting mod_assign db/tasks.ts makes the upgrade need no maintenance (exit 3)', async () => {
    await editCode(TASKS, revertTasks);
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(3);
    expect(required.stdout).toContain('Maintenance is NOT required');
  });

  it('step 27: --no-maintenance --set-ui-upgrade-lock, accepted, upgrades online and sleeps', async () => {
    ({ running: sleeping } = await startSleepingUpgrade(['--no-maintenance', '--set-ui-upgrade-lock']));
    expect(sleepingOutput).toContain('Upgrade now, without maintenance? [y/N]');
    expect(sleepingOutput).toContain('Upgrade lock taken (online mode).');
    const status = await statusJson();
    expect(status.upgradeRunning).toMatchObject({ mode: 'online', pid: sleeping.child.pid });
    expect(status.flags.maintenance.enabled).toBe(false);
    expect(status.flags.uiUpgradeLock).toBe(true);
  });

  it('step 28: the site is not in maintenance, and the admin can click around', async () => {
    const { context, page } = await adminPage();
    try {
      const response = await visitAdmin(page, (r) => r.status() === 200 && pathOf(r) === '/admin');
      expect(response.status()).toBe(200);
      expect(pathOf(response)).toBe('/admin');
      expect(await page.title()).toBe('Site administration');
      expect(await page.locator('#upgrade-now').count()).toBe(0);
      const flags = await page.locator('#site-flags').innerText();
      expect(flags).toMatch(/Maintenance\s+off/);
      expect(flags).toContain('yes, online mode');
      await shot(page, '28-not-in-maintenance-dashboard');

      const visited = await clickAround(page, '28-click-around');
      expect(visited).toEqual(expect.arrayContaining(['/', '/mod_assign/', '/theme_sleepy/', '/admin/upgrade']));

      // The upgrade page says an online upgrade runs, and who runs it; never "retry later"
      // while the site serves (issue 10). Its progress comes from the CLI run's own lines.
      await page.goto('/admin/upgrade');
      const banner = await page.locator('#upgrade-running').innerText();
      expect(banner).toContain('An online upgrade is running, started by cli on');
      expect(banner).toContain('The site keeps serving');
      expect(banner).not.toContain('please retry later');
      expect(await page.locator('#upgrade-progress').innerText()).toContain('Upgrade started (online mode) by cli');
      await shot(page, '28-online-upgrade-banner');
    } finally {
      await context.close();
    }
    expect(sleeping!.child.exitCode).toBeNull();
  });

  it('step 29: Ctrl+C (SIGINT) cancels the online upgrade; nothing is left running', async () => {
    const { result, signal: sent } = await cancel(sleeping!);
    console.info(`[mdl-65471] step 29: the upgrade was cancelled with ${sent} (exit ${result.code}, signal ${sleeping!.child.signalCode})`);
    sleeping = undefined;
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain('Upgrade complete');
    const status = await statusWhen((s) => s.upgradeRunning === null);
    expect(status.upgradeRunning).toBeNull();
    expect(status.flags.maintenance.enabled).toBe(false);
    expect(installed(status, 'mod_assign')).toBe(2026020100);
    expect(installed(status, 'theme_sleepy')).toBe(SLEEPY_FROM);
  });

  it('steps 30–32: --no-maintenance with db/tasks.ts changed says it WILL need maintenance (exit 2) and starts nothing', async () => {
    await editCode(TASKS, editTasks);
    await rm(started, { force: true });
    const before = await statusJson();
    const refused = await run(['upgrade', '--no-maintenance']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('This upgrade WILL result in maintenance mode');
    expect(refused.stdout).not.toContain('Upgrade lock taken');
    expect(existsSync(started)).toBe(false);
    const after = await statusJson();
    expect(after.components).toEqual(before.components);
    expect(after.flags).toEqual(before.flags);
    expect(after.upgradeRunning).toBeNull();
  });

  it('step 33: reverting db/tasks.ts again makes the upgrade need no maintenance (exit 3)', async () => {
    await editCode(TASKS, revertTasks);
    expect((await run(['upgrade', '--is-maintenance-required'])).code).toBe(3);
  });

  it('step 34: the "sleep" is removed (the signal file lets the step finish at once)', async () => {
    await writeFile(signal, 'go on\n');
    expect(existsSync(signal)).toBe(true);
  });

  it('steps 35–37: --no-maintenance --set-ui-upgrade-lock, accepted, completes and prints the cache purge', async () => {
    const upgraded = await run(['upgrade', '--no-maintenance', '--set-ui-upgrade-lock'], 'y\n');
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain('Upgrade now, without maintenance? [y/N]');
    expect(upgraded.stdout).toContain('Upgrade lock taken (online mode).');
    expect(upgraded.stdout).toContain('Upgrade complete');
    expect(upgraded.stdout).toContain('no maintenance');
    expect(upgraded.stdout).toContain('outageless purge-caches');
    const status = await statusJson();
    expect(status.upgradeRunning).toBeNull();
    expect(status.flags.uiUpgradeLock).toBe(true);
    expect(status.flags.maintenance.enabled).toBe(false);
    expect(installed(status, 'mod_assign')).toBe(2026020101);
    expect(installed(status, 'theme_sleepy')).toBe(SLEEPY_TO);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
    expect((await run(['upgrade', '--is-maintenance-required'])).code).toBe(0);
    expect((await run(['check-schema'])).code).toBe(0);
  });
});
