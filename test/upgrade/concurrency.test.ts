/**
 * One upgrader at a time (README "The run"): several `outageless upgrade` processes started
 * together against one PostgreSQL database. A slow `local_slow` step, gated by a signal file,
 * keeps the winner inside the run so the others meet its advisory lock.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { cli, createSiteDir, type CliResult, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const V1 = 2026010100;
const V2 = 2026020100;

/** Release 2's steps plus the slow one: what every 1 -> 2 run must apply exactly once. */
const RELEASE_2_STEPS = [
  { component: 'auth_manual', step_id: 'auth_manual_add_resettoken', count: 1 },
  { component: 'block_news', step_id: 'news_add_subscription', count: 1 },
  { component: 'local_slow', step_id: 'slow_wait', count: 1 },
  { component: 'mod_assign', step_id: 'assign_add_duedate', count: 1 },
];

/**
 * Writes `plugins/local/slow` at release 1 (no steps) or 2 (one step that writes its pid to
 * $SLOW_MARKER_FILE, then waits until $SLOW_SIGNAL_FILE exists).
 */
async function writeSlowPlugin(site: SiteDir, release: 1 | 2): Promise<void> {
  const dir = 'plugins/local/slow';
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_slow', version: ${release === 1 ? V1 : V2}, requires: ${V1}, maturity: 'stable' });
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    local_slow_item: {
      columns: { id: { type: 'bigint', autoIncrement: true }, name: { type: 'varchar(50)' } },
      primaryKey: ['id'],
    },
  },
});
`);
  const steps = release === 1 ? '[]' : `[
    {
      version: ${V2},
      id: 'slow_wait',
      outage: 'none',
      async run() {
        const marker = process.env.SLOW_MARKER_FILE;
        const signal = process.env.SLOW_SIGNAL_FILE;
        if (!marker || !signal) throw new Error('SLOW_MARKER_FILE and SLOW_SIGNAL_FILE must be set');
        writeFileSync(marker, String(process.pid));
        while (!existsSync(signal)) await sleep(20);
      },
    },
  ]`;
  await site.write(`${dir}/db/upgrade.ts`, `import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: ${steps} });
`);
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!postgresAvailable)('Four upgraders started at once: exactly one applies each step (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let files: string;
  let marker: string;
  let signal: string;

  const env = () => ({ SLOW_MARKER_FILE: marker, SLOW_SIGNAL_FILE: signal });
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url], { env: env() });
  const statusJson = async () => {
    const status = await run(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    return JSON.parse(status.stdout);
  };
  const query = async <T = any>(text: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      return (await client.query(text)).rows as T[];
    } finally {
      await client.end();
    }
  };
  const appliedSteps = () =>
    query(`select component, step_id, count(*)::int as count from outageless_upgrade_log
            where status = 'applied' group by component, step_id order by component, step_id`);
  const markerPid = async () => Number(await readFile(marker, 'utf8'));
  /** The step writes its pid to the marker when it starts. */
  const stepStarted = () => existsSync(marker) && readFileSync(marker, 'utf8').length > 0;

  /** Release 1 plus local_slow installed, then release 2 plus the slow step deployed. */
  async function installThenDeployRelease2(): Promise<void> {
    await site.deploy(1);
    await writeSlowPlugin(site, 1);
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    await site.deploy(2);
    await writeSlowPlugin(site, 2);
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase('concurrency');
  });
  afterAll(async () => {
    await scratch?.drop();
  });
  beforeEach(async () => {
    // Every case starts from an empty database and a fresh working copy.
    await query('drop schema public cascade; create schema public');
    site = await createSiteDir();
    files = await mkdtemp(join(tmpdir(), 'outageless-concurrency-'));
    marker = join(files, 'step-started');
    signal = join(files, 'release-step');
  });
  afterEach(async () => {
    // Never leave an upgrader blocked if an assertion failed early.
    await writeFile(signal, '').catch(() => {});
    await site?.cleanup();
    await rm(files, { recursive: true, force: true });
  });

  it('without --wait: one upgrader does the work, the three others exit 4 naming the holder', async () => {
    await installThenDeployRelease2();

    const runs = Array.from({ length: 4 }, () => run(['upgrade', '--non-interactive']));
    const finished = new Set<number>();
    runs.forEach((running, index) => void running.then(() => finished.add(index)));

    await waitFor('the slow step to start', stepStarted);
    // The losers fail as soon as they meet the lock; the step stays blocked until they have.
    await waitFor('three upgraders to give up', () => finished.size >= 3).catch(() => {});
    await writeFile(signal, '');
    const results = await Promise.all(runs);
    const winnerPid = await markerPid();

    const winners = results.filter((result) => result.code === 0);
    expect(winners, results.map((r) => `${r.code}: ${r.stderr}`).join('\n')).toHaveLength(1);
    const winnerIndex = results.indexOf(winners[0]!);
    expect(runs[winnerIndex]!.child.pid).toBe(winnerPid);
    expect(winners[0]!.stdout).toContain('Upgrade complete');
    expect(winners[0]!.stdout).toMatch(/local_slow:\s+step slow_wait \(2026020100\) applied/);

    const losers = results.filter((result) => result !== winners[0]);
    for (const loser of losers) {
      expect(loser.code, loser.stderr).toBe(4);
      expect(loser.stderr).toContain('OUTAGELESS_ERR_UPGRADE_LOCKED');
      expect(loser.stderr).toContain('another upgrade is running');
      const holder = /another upgrade is running \(host (\S+), pid (\d+),/.exec(loser.stderr);
      expect(holder, loser.stderr).not.toBeNull();
      expect(hostname().startsWith(holder![1]!)).toBe(true);
      expect(Number(holder![2])).toBe(winnerPid);
      expect(loser.stdout).not.toContain('Upgrade complete');
    }

    expect(await appliedSteps()).toEqual(RELEASE_2_STEPS);
    const versions = await query<{ version: number }>(`select version::int from outageless_component where component = 'local_slow'`);
    expect(versions).toEqual([{ version: V2 }]);
  });

  it('with --wait 60: one upgrader does the work, the three others queue and find nothing to do', async () => {
    await installThenDeployRelease2();

    const live = ['', '', '', ''];
    const runs = Array.from({ length: 4 }, (_, index) => {
      const running = run(['upgrade', '--non-interactive', '--wait', '60']);
      running.child.stdout!.on('data', (chunk) => (live[index] += String(chunk)));
      return running;
    });

    await waitFor('the slow step to start', stepStarted);
    const winnerPid = await markerPid();
    const winnerIndex = runs.findIndex((running) => running.child.pid === winnerPid);
    expect(winnerIndex).toBeGreaterThanOrEqual(0);
    // Release only once the three others are queued behind the lock, so each really waited.
    await waitFor('three upgraders to queue', () => live.filter((out) => out.includes('Waiting for the running upgrade')).length >= 3).catch(() => {});
    await writeFile(signal, '');
    const results: CliResult[] = await Promise.all(runs);

    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const winner = results[winnerIndex]!;
    expect(winner.stdout).toContain('Upgrade complete');
    expect(winner.stdout).toMatch(/local_slow:\s+step slow_wait \(2026020100\) applied/);
    const waiters = results.filter((_, index) => index !== winnerIndex);
    for (const waiter of waiters) {
      expect(waiter.stdout).toContain(`Waiting for the running upgrade (host ${hostname()}, pid ${winnerPid})`);
      expect(waiter.stdout).toContain('nothing to do');
      expect(waiter.stdout).not.toContain('Upgrade complete');
      expect(waiter.stdout).not.toMatch(/step \S+ \(\d+\) applied/);
    }

    expect(await appliedSteps()).toEqual(RELEASE_2_STEPS);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
  });

  it('status --json shows the running upgrade (mode, pid, host) while a step is blocked, and null after', async () => {
    await installThenDeployRelease2();
    expect((await statusJson()).upgradeRunning).toBeNull();

    const running = run(['upgrade', '--non-interactive']);
    await waitFor('the slow step to start', stepStarted);

    const during = await statusJson();
    expect(during.upgradeRunning).toMatchObject({ mode: 'maintenance', pid: running.child.pid });
    expect(hostname().startsWith(during.upgradeRunning.host)).toBe(true);
    expect(during.upgradeRunning.host).not.toBe('');
    expect(Number.isNaN(Date.parse(during.upgradeRunning.since))).toBe(false);
    // A maintenance-mode run puts the site in maintenance for as long as it holds the lock.
    expect(during.flags.maintenance.enabled).toBe(true);

    await writeFile(signal, '');
    const result = await running;
    expect(result.code, result.stderr).toBe(0);

    const after = await statusJson();
    expect(after.upgradeRunning).toBeNull();
    expect(after.flags.maintenance.enabled).toBe(false);
  });
  // The runner verifies the lock inside each step's transaction before its savepoint commits,
  // so an upgrader whose lock session died rolls its step back instead of applying it twice.
  it('an upgrader whose lock session dies stops before it commits, so a second one cannot apply the same step', async () => {
    await installThenDeployRelease2();

    const first = run(['upgrade', '--non-interactive']);
    await waitFor('the slow step to start', stepStarted);
    // The lock connection is dropped (idle-session timeout, a proxy, an operator): the server
    // releases the advisory lock, and "upgrade running" is no longer true for anyone else.
    const terminated = await query<{ done: boolean }>(
      `select pg_terminate_backend(pid) as done from pg_stat_activity where datname = current_database() and application_name like 'outageless-upgrade %'`,
    );
    expect(terminated).toEqual([{ done: true }]);
    await waitFor('the lock to be released', async () => (await statusJson()).upgradeRunning === null);

    await rm(marker, { force: true });
    const second = run(['upgrade', '--non-interactive']);
    // Either the second upgrader reaches the step (only acceptable if the first one gave up),
    // or it ends first; give it the chance to, then let every step finish.
    await waitFor('the second upgrader to reach the step or end', async () => stepStarted() || second.child.exitCode !== null).catch(() => {});
    await writeFile(signal, '');
    const results = await Promise.all([first, second]);

    expect(results.filter((result) => result.code === 0).length, results.map((r) => `${r.code}: ${r.stdout}${r.stderr}`).join('\n')).toBeGreaterThanOrEqual(1);
    expect(await appliedSteps()).toEqual(RELEASE_2_STEPS);
  });
});
