/**
 * Upgrade runs and their progress in the database (issue 10): a run started from the CLI is
 * visible, line by line, on another front's progress endpoint while its step runs, with the
 * online banner; a failed then resumed run shows in `outageless history` (text and --json)
 * and /admin/history with its steps, durations and failure; a database that refuses progress
 * writes never fails the run. PostgreSQL; the real CLI for the commands and their exit codes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { discoverSite } from '../../src/component/discover.ts';
import type { SiteDatabase } from '../../src/database/open.ts';
import { isOutagelessError } from '../../src/errors.ts';
import { UPGRADING_MESSAGE } from '../../src/runtime/guard.ts';
import { readRunEvents, readUpgradeRuns } from '../../src/state/upgrade-history.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { cli, type SiteDir } from '../support/sites.ts';
import { postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { Client, installHistorySite, removeHistorySite, startHistoryFront, holdWaitLock, waitFor, waitVersion, writeHistorySite } from '../support/history-site.ts';

if (!postgresAvailable) console.warn('[upgrade-history] PostgreSQL unavailable: these tests are SKIPPED.');

interface Progress {
  running: boolean;
  outcome: string | null;
  error: string | null;
  lines: string[];
  run: { runId: string; mode: string; startedBy: string; status: string } | null;
}

describe.skipIf(!postgresAvailable)('upgrade runs and history in the database (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  const fronts: FastifyInstance[] = [];
  const history = (args: string[]) => cli(['history', ...args, '--root', site.root, '--database', scratch.url]);

  async function startFront(): Promise<FastifyInstance> {
    return startHistoryFront({ scratch, site, database }, fronts);
  }

  beforeAll(async () => {
    ({ scratch, site, database } = await installHistorySite('upgrade_history'));
  });
  afterEach(async () => {
    for (const app of fronts.splice(0)) await app.close();
  });
  afterAll(async () => {
    await removeHistorySite({ scratch, site, database });
  });

  it('a CLI run shows live on another front: its lines while the step waits, the online banner, then its outcome', async () => {
    await writeHistorySite(site, { n: 1, outage: 'none', wait: true });
    const app = await startFront();
    const admin = new Client(app);
    await admin.login();
    const visitor = new Client(app);

    const held = await holdWaitLock(scratch.url);
    let upgrade: ReturnType<typeof cli> | undefined;
    try {
      upgrade = cli(['upgrade', '--no-maintenance', '--non-interactive', '--root', site.root, '--database', scratch.url]);
      let progress: Progress | undefined;
      await waitFor('the CLI run on the front', async () => {
        progress = (await admin.json('/admin/upgrade/progress')).json<Progress>();
        return progress.running && progress.lines.some((line) => line.startsWith('local_wait: upgrading'));
      }, 60_000);
      // Mid-run: the step is still waiting for the test's lock.
      expect(progress!.run).toMatchObject({ startedBy: 'cli', mode: 'online', status: 'running' });
      expect(progress!.lines[0]).toMatch(/^Upgrade started \(online mode\) by cli on .+, pid \d+$/);
      expect(progress!.lines.join('\n')).not.toContain('Upgrade complete');
      await app.outageless.refresh();
      expect((await visitor.json('/local_other/')).statusCode).toBe(200);
      const page = await admin.get('/admin/upgrade');
      expect(page.body).toMatch(/id="upgrade-running" data-mode="online">An online upgrade is running, started by cli on /);
      expect(page.body).not.toContain(UPGRADING_MESSAGE);
      expect(page.body).toContain(`data-run="${progress!.run!.runId}"`);
      expect(page.body).toContain('local_wait: upgrading');
    } finally {
      await held.release();
    }
    const result = await upgrade!;
    expect(result.code, result.stderr).toBe(0);
    const done = (await admin.json('/admin/upgrade/progress')).json<Progress>();
    expect(done).toMatchObject({ running: false, outcome: 'succeeded', error: null });
    expect(done.lines.join('\n')).toContain(`local_wait: step wait_1 (${waitVersion(1)}) applied`);
    expect(done.lines.at(-1)).toMatch(/^Upgrade complete in \d+\.\d\d s$/);
  });

  it('a failed then resumed run: history lists both with steps, durations and the failure (CLI text and --json, /admin/history)', async () => {
    await writeHistorySite(site, { n: 1, outage: 'none' }, 1);
    const code = await discoverSite(site.root);
    const failure = await runUpgrade({ database, code, mode: 'online', startedBy: 'test' }).then(() => undefined, (error: unknown) => error);
    expect(isOutagelessError(failure, 'OUTAGELESS_ERR_STEP_FAILED')).toBe(true);
    await database.db.insertInto('local_flaky_item').values({ note: 'ok now' }).execute();
    const resumed = await runUpgrade({ database, code, mode: 'online', startedBy: 'test' });
    expect(resumed.kind).toBe('upgraded');

    const [second, first] = await readUpgradeRuns(database.db, { limit: 2, lock: database.upgradeLock });
    expect(first).toMatchObject({ status: 'failed', mode: 'online', phase: 'all', startedBy: 'test', error: { code: 'OUTAGELESS_ERR_STEP_FAILED' } });
    expect(first!.components).toEqual([expect.objectContaining({ component: 'local_flaky', result: null, applied: expect.objectContaining({ count: 1 }), failed: expect.objectContaining({ count: 1 }) })]);
    expect(first!.log.find((entry) => entry.status === 'failed')).toMatchObject({ step: 'flaky_b', error: 'flaky_b: local_flaky_item is still empty' });
    expect(second).toMatchObject({ status: 'succeeded', error: null });
    expect(second!.components).toEqual([expect.objectContaining({ component: 'local_flaky', result: 'upgraded', applied: expect.objectContaining({ count: 1 }), failed: { count: 0, durationMs: 0 } })]);
    expect(second!.durationMs).toBeGreaterThanOrEqual(0);
    const events = await readRunEvents(database.db, first!.runId);
    expect(events.at(-1)?.message).toMatch(/^Upgrade failed after .* s: OUTAGELESS_ERR_STEP_FAILED: /);

    const text = await history(['--limit', '3']);
    expect(text.code, text.stderr).toBe(0);
    const blocks = text.stdout.trim().split('\n\n');
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toMatch(new RegExp(`^Run ${second!.runId.slice(0, 8)}  succeeded  started \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d [+-]\\d\\d:\\d\\d \\((just now|[\\d.]+ s ago)\\), took \\d+ ms; online mode, phase all, by test on `));
    expect(blocks[0]).toMatch(/\n {2}local_flaky upgraded at 2026010102 in \d+ ms: 1 applied \(\d+ ms\), 0 skipped/);
    expect(blocks[1]).toContain(`Run ${first!.runId.slice(0, 8)}  failed`);
    expect(blocks[1]).toMatch(/local_flaky in \d+ ms: 1 applied \(\d+ ms\), 0 skipped, 1 FAILED \(\d+ ms\)/);
    expect(blocks[1]).toContain('failed: local_flaky step flaky_b (2026010102) after');
    expect(blocks[1]).toContain('flaky_b: local_flaky_item is still empty');
    expect(blocks[2]).toContain('by cli on');

    const json = await history(['--json', '--limit', '2']);
    expect(json.code, json.stderr).toBe(0);
    const { runs } = JSON.parse(json.stdout) as { runs: Record<string, unknown>[] };
    expect(runs.map((run) => run.runId)).toEqual([second!.runId, first!.runId]);
    expect(runs[1]).toMatchObject({
      recorded: true, mode: 'online', phase: 'all', startedBy: 'test', status: 'failed',
      error: { code: 'OUTAGELESS_ERR_STEP_FAILED' },
      components: [{ component: 'local_flaky', result: null, applied: { count: 1 }, skipped: { count: 0 }, failed: { count: 1 } }],
      steps: [
        { component: 'local_flaky', step: 'flaky_a', status: 'applied', version: 2026010101 },
        { component: 'local_flaky', step: 'flaky_b', status: 'failed', version: 2026010102, error: 'flaky_b: local_flaky_item is still empty' },
      ],
    });
    expect(Date.parse(String(runs[1]!.startedAt))).toBe(first!.startedAt.getTime());
    expect(typeof runs[1]!.durationMs).toBe('number');

    const detail = await history(['--run', first!.runId.slice(0, 8)]);
    expect(detail.code, detail.stderr).toBe(0);
    expect(detail.stdout).toContain(`run id ${first!.runId}`);
    expect(detail.stdout).toMatch(/local_flaky step flaky_b \(2026010102\) failed, \d+ ms: flaky_b: local_flaky_item is still empty/);
    expect(detail.stdout).toMatch(/Progress:\n.*Upgrade started \(online mode\) by test on /);
    const detailJson = JSON.parse((await history(['--run', first!.runId, '--json'])).stdout) as { run: { runId: string; events: { message: string }[] } };
    expect(detailJson.run.runId).toBe(first!.runId);
    expect(detailJson.run.events.at(-1)?.message).toMatch(/^Upgrade failed after/);

    // The admin page: the same facts, times as <time datetime> with a UTC fallback.
    const app = await startFront();
    const admin = new Client(app);
    await admin.login();
    const page = await admin.get('/admin/history');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`<tr data-run="${first!.runId}">`);
    expect(page.body).toContain(`<time datetime="${first!.startedAt.toISOString()}">${first!.startedAt.toISOString().slice(0, 19).replace('T', ' ')} UTC</time>`);
    expect(page.body).toMatch(/data-status="failed">failed<\/td>/);
    expect(page.body).toContain('flaky_b: local_flaky_item is still empty');
    expect(page.body).toMatch(/<strong class="outcome-failed">1 failed \(\d+ ms\)<\/strong>/);
    const one = await admin.get(`/admin/history?run=${first!.runId.slice(0, 8)}`);
    expect(one.statusCode).toBe(200);
    expect(one.body).toContain('id="run-steps"');
    expect(one.body).toContain('id="run-progress"');
    expect((await admin.get('/admin/history?run=ffffffff')).statusCode).toBe(404);
    expect((await admin.json('/admin/history?limit=1')).json()).toMatchObject({ runs: [{ runId: second!.runId }] });
    expect((await admin.get('/admin/upgrade')).body).toContain('href="/admin/history"');
  });

  it('bad flags exit 64 with a coded error; an unknown run too', async () => {
    for (const args of [['--limit', 'many'], ['--limit', '0'], ['--run', 'abc', '--limit', '2']]) {
      const result = await history([...args, '--json']);
      expect(result.code, args.join(' ')).toBe(64);
      expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'OUTAGELESS_ERR_USAGE' } });
    }
    const unknown = await history(['--run', 'ffffffff', '--json']);
    expect(unknown.code).toBe(64);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { code: 'OUTAGELESS_ERR_UNKNOWN_RUN', field: '--run' } });
    expect(unknown.stderr).toContain('outageless history');
  });

  it('progress writes that fail never fail the run: it is logged once, and the run still succeeds', async () => {
    await writeHistorySite(site, { n: 2, outage: 'none' }, 1);
    // Every new event row is refused from now on (existing rows are left alone).
    await sql`alter table outageless_upgrade_event add constraint refuse_events check (false) not valid`.execute(database.db);
    const warnings: string[] = [];
    try {
      const result = await runUpgrade({ database, code: await discoverSite(site.root), mode: 'online', onRecordWarning: (message) => warnings.push(message) });
      expect(result.kind).toBe('upgraded');
    } finally {
      await sql`alter table outageless_upgrade_event drop constraint refuse_events`.execute(database.db);
    }
    expect(warnings[0]).toMatch(/^outageless: could not record upgrade progress \(event lock-acquired\): .*refuse_events.*; the upgrade goes on$/);
    expect(warnings.length).toBeLessThanOrEqual(2);
    const [last] = await readUpgradeRuns(database.db, { limit: 1 });
    expect(last).toMatchObject({ status: 'succeeded', startedBy: 'api' });
    expect(await readRunEvents(database.db, last!.runId)).toEqual([]);
  });
});
