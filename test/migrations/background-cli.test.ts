/**
 * `outageless background status|pause|resume|retry|cancel|finish` and the background section
 * of `status`, through the real binary on PostgreSQL: the numbers of --json against the row,
 * every lifecycle change and every refusal with its code and exit code, `finish` migrating
 * every row, and Ctrl-C stopping `finish` after the batch in flight with nothing half-done.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { runBatch } from '../../src/migrations/engine.ts';
import { queueBackgroundMigration, readBackgroundMigration } from '../../src/migrations/store.ts';
import type { BackgroundStep } from '../../src/migrations/types.ts';
import { cli, createSiteDir, writeBareCore, type CliResult, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const CORE = 2026010100;
const VERSION = 2026010103;
const ROWS = 1000;

/**
 * local_bg: a table of ROWS items and three background migrations over it: fill_v2 (v2 = 2v,
 * batches of at most 100 keys), other (never run: for cancel), slow (v3 = 3v, 10 keys a batch,
 * 150 ms each: slow enough to interrupt).
 */
async function writeBackgroundPlugin(site: SiteDir): Promise<void> {
  const dir = 'plugins/local/bg';
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_bg', version: ${VERSION}, requires: ${CORE}, maturity: 'stable' });
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    local_bg_item: {
      columns: { id: { type: 'bigint' }, v: { type: 'integer' }, v2: { type: 'integer', nullable: true }, v3: { type: 'integer', nullable: true } },
      primaryKey: ['id'],
    },
  },
});
`);
  await site.write(`${dir}/db/upgrade.ts`, `import { defineUpgrade } from 'outageless';
export default defineUpgrade({
  steps: [
    {
      phase: 'background', version: 2026010101, id: 'fill_v2', description: 'v2 = 2v',
      table: 'local_bg_item', key: 'id', batchSize: { min: 10, initial: 100, max: 100 },
      async batch({ db, from, to }) {
        const result = await db.updateTable('local_bg_item').set((eb) => ({ v2: eb('v', '*', 2) }))
          .where('id', '>=', from).where('id', '<=', to).where('v2', 'is', null).executeTakeFirst();
        return Number(result.numUpdatedRows);
      },
    },
    {
      phase: 'background', version: 2026010102, id: 'other', description: 'never run',
      table: 'local_bg_item', key: 'id',
      async batch() {
        throw new Error('other must not run in this test');
      },
    },
    {
      phase: 'background', version: 2026010103, id: 'slow', description: 'v3 = 3v, slowly',
      table: 'local_bg_item', key: 'id', batchSize: { min: 10, initial: 10, max: 10 },
      async batch({ db, from, to }) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        const result = await db.updateTable('local_bg_item').set((eb) => ({ v3: eb('v', '*', 3) }))
          .where('id', '>=', from).where('id', '<=', to).where('v3', 'is', null).executeTakeFirst();
        return Number(result.numUpdatedRows);
      },
    },
  ],
});
`);
}

/** The step as the store needs it to queue (range, key, tuning); the CLI loads the real one from disk. */
function queuedStep(id: string, version: number, batchSize?: BackgroundStep['batchSize']): BackgroundStep {
  return { phase: 'background', version, id, table: 'local_bg_item', key: 'id', ...(batchSize ? { batchSize } : {}), batch: () => 0 };
}

interface JsonMigration {
  name: string;
  state: string;
  minKey: number | null;
  maxKey: number | null;
  cursor: number | null;
  percent: number;
  keysDone: number;
  keysTotal: number;
  batches: number;
  rowsChanged: number;
  batchSize: number;
  rowsPerSecond: number | null;
  etaSeconds: number | null;
  error: string | null;
}

describe.skipIf(!postgresAvailable)('outageless background on PostgreSQL', () => {
  let site: SiteDir;
  let scratch: ScratchDatabase;
  let database: SiteDatabase;
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url]);
  const json = <T>(result: CliResult): T => JSON.parse(result.stdout) as T;
  const listed = async (): Promise<Map<string, JsonMigration>> => {
    const result = await run(['background', 'status', '--json']);
    expect(result.code, result.stderr).toBe(0);
    return new Map(json<{ backgroundMigrations: JsonMigration[] }>(result).backgroundMigrations.map((m) => [m.name, m]));
  };
  const state = async (id: string) => (await readBackgroundMigration(database.db, 'local_bg', id))?.state;
  /** A refused command: exit 1, the code on stderr and in the --json error. */
  const refused = async (args: string[], code: string) => {
    const result = await run([...args, '--json']);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(json<{ error: { code: string } }>(result).error.code).toBe(code);
    expect(result.stderr).toContain(code);
  };

  beforeAll(async () => {
    site = await createSiteDir();
    await writeBareCore(site, CORE);
    await writeBackgroundPlugin(site);
    scratch = await createScratchDatabase('background_cli');
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stdout + install.stderr).toBe(0);
    database = await openDatabase(scratch.url);
    await sql`insert into local_bg_item (id, v) select g, g from generate_series(1, ${ROWS}) g`.execute(database.db);
    // Installed at their versions, so nothing queued them: queued here as an upgrade would.
    await queueBackgroundMigration(database.db, { component: 'local_bg', step: queuedStep('fill_v2', 2026010101, { min: 100, initial: 100, max: 100 }) });
    await queueBackgroundMigration(database.db, { component: 'local_bg', step: queuedStep('other', 2026010102) });
    await queueBackgroundMigration(database.db, { component: 'local_bg', step: queuedStep('slow', 2026010103, { min: 10, initial: 10, max: 10 }) });
  }, 120_000);
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
    await site?.cleanup();
  });

  it('status --json: a queued migration at 0 %, its range and batch size; plain lines on a pipe', async () => {
    const migrations = await listed();
    expect([...migrations.keys()]).toEqual(['local_bg/fill_v2', 'local_bg/other', 'local_bg/slow']);
    expect(migrations.get('local_bg/fill_v2')).toMatchObject({
      state: 'queued', minKey: 1, maxKey: ROWS, cursor: null, percent: 0, keysDone: 0, keysTotal: ROWS,
      batches: 0, rowsChanged: 0, batchSize: 100, rowsPerSecond: null, etaSeconds: null, error: null,
    });
    const text = await run(['background', 'status']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('local_bg/fill_v2  queued  0.0%  local_bg_item.id 1..1000, cursor -  batches 0  rows changed 0  batch size 100');
    expect(text.stdout).not.toContain('█'); // no bar when stdout is not a TTY
  });

  it('status --json after three batches: 30 %, rows/s and ETA from the time it has run', async () => {
    for (let i = 0; i < 3; i++) {
      const outcome = await runBatch(database.db, { component: 'local_bg', id: 'fill_v2' }, {
        ...queuedStep('fill_v2', 2026010101, { min: 100, initial: 100, max: 100 }),
        batch: async ({ db, from, to }) => Number((await sql`update local_bg_item set v2 = v * 2 where id between ${from} and ${to}`.execute(db)).numAffectedRows),
      });
      expect(outcome.kind).toBe('done');
    }
    // Started 100 s ago: 300 rows in ~100 s is ~3 rows/s, and 700 keys left at that rate ~233 s.
    await sql`update outageless_background_migration set started_at = now() - interval '100 seconds' where id = 'fill_v2'`.execute(database.db);
    const fill = (await listed()).get('local_bg/fill_v2')!;
    expect(fill).toMatchObject({ state: 'running', cursor: 300, percent: 30, keysDone: 300, batches: 3, rowsChanged: 300, batchSize: 100 });
    expect(fill.rowsPerSecond).toBe(3);
    expect(fill.etaSeconds).toBeGreaterThanOrEqual(225);
    // 700 keys at 300 keys per (100 s + the seconds since that update): a few seconds of slack.
    expect(fill.etaSeconds).toBeLessThanOrEqual(250);

    // `status` carries the same numbers, and a section in its text.
    const status = await run(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const statusFill = json<{ backgroundMigrations: JsonMigration[] }>(status).backgroundMigrations.find((m) => m.name === 'local_bg/fill_v2');
    expect(statusFill).toMatchObject({ state: 'running', cursor: 300, percent: 30, batches: 3, rowsChanged: 300 });
    const statusText = await run(['status']);
    expect(statusText.stdout).toMatch(/Background migrations:\n {2}local_bg\/fill_v2 {2}running {2}30\.0%/);
  });

  it('pause, resume, retry and cancel change the state, and refuse what the lifecycle does not allow', async () => {
    const paused = await run(['background', 'pause', 'local_bg/fill_v2', '--json']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(json<{ migration: JsonMigration }>(paused).migration.state).toBe('paused');
    expect(await state('fill_v2')).toBe('paused');
    await refused(['background', 'pause', 'local_bg/fill_v2'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');
    await refused(['background', 'retry', 'local_bg/fill_v2'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');

    const resumed = await run(['background', 'resume', 'local_bg/fill_v2']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain('local_bg/fill_v2 resumed (now running)');
    expect(await state('fill_v2')).toBe('running');
    await refused(['background', 'resume', 'local_bg/fill_v2'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');

    // A batch that kept failing down to one key, as the engine records it.
    await sql`update outageless_background_migration set state = 'failed', error = 'key 301: boom', failed_key = 301 where id = 'fill_v2'`.execute(database.db);
    expect((await listed()).get('local_bg/fill_v2')).toMatchObject({ state: 'failed', error: 'key 301: boom', etaSeconds: null });
    expect((await run(['background', 'status'])).stdout).toContain('error: key 301: boom');
    await refused(['background', 'resume', 'local_bg/fill_v2'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');
    const retried = await run(['background', 'retry', 'local_bg/fill_v2', '--json']);
    expect(retried.code, retried.stderr).toBe(0);
    expect(json<{ migration: JsonMigration }>(retried).migration).toMatchObject({ state: 'running', error: null, cursor: 300 });

    const cancelled = await run(['background', 'cancel', 'local_bg/other']);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(await state('other')).toBe('cancelled');
    await refused(['background', 'cancel', 'local_bg/other'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');
    await refused(['background', 'resume', 'local_bg/other'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');
    await refused(['background', 'finish', 'local_bg/other'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');
  });

  it('an unknown migration is a coded error (exit 1); a name without a slash is a usage error (64)', async () => {
    for (const command of ['pause', 'resume', 'retry', 'cancel', 'finish']) {
      await refused(['background', command, 'local_bg/nope'], 'OUTAGELESS_ERR_UNKNOWN_BACKGROUND_MIGRATION');
    }
    const malformed = await run(['background', 'pause', 'fill_v2']);
    expect(malformed.code).toBe(64);
    expect(malformed.stderr).toContain('<component>/<id>');
    expect(await state('fill_v2')).toBe('running');
  });

  it('finish runs the rest in the foreground: every row migrated, 100 %, then "already finished"', async () => {
    const finished = await run(['background', 'finish', 'local_bg/fill_v2']);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    expect(finished.stdout).toContain('local_bg/fill_v2 finished: 1000 rows changed');
    const { rows: [counts] } = await sql<{ done: number; wrong: number }>`
      select count(*) filter (where v2 = v * 2)::int as done, count(*) filter (where v2 is distinct from v * 2)::int as wrong from local_bg_item`.execute(database.db);
    expect(counts).toEqual({ done: ROWS, wrong: 0 });
    expect((await listed()).get('local_bg/fill_v2')).toMatchObject({ state: 'finished', cursor: ROWS, percent: 100, keysDone: ROWS, rowsChanged: ROWS, etaSeconds: null });

    const again = await run(['background', 'finish', 'local_bg/fill_v2']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already finished');
    await refused(['background', 'pause', 'local_bg/fill_v2'], 'OUTAGELESS_ERR_BACKGROUND_TRANSITION');
  }, 60_000);

  it('Ctrl-C stops finish after the batch in flight: exit 1, the cursor on a batch boundary, exactly its rows migrated', async () => {
    const finishing = run(['background', 'finish', 'local_bg/slow']);
    // Plain progress lines come at most once a second; the first batch takes 150 ms.
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        if (/local_bg\/slow {2}\d/.test(chunk.toString())) {
          finishing.child.stdout?.off('data', onData);
          resolve();
        }
      };
      finishing.child.stdout?.on('data', onData);
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const signalled = performance.now();
    finishing.child.kill('SIGINT');
    const result = await finishing;
    expect(performance.now() - signalled).toBeLessThan(5000);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toContain('Stopped after the batch in flight');
    const slow = (await readBackgroundMigration(database.db, 'local_bg', 'slow'))!;
    expect(slow.state).toBe('running');
    expect(slow.cursor).not.toBeNull();
    expect(slow.cursor! % 10).toBe(0);
    expect(slow.cursor!).toBeLessThan(ROWS);
    const { rows: [migrated] } = await sql<{ n: number; max: number }>`select count(*)::int as n, max(id)::int as max from local_bg_item where v3 is not null`.execute(database.db);
    expect(migrated).toEqual({ n: slow.cursor, max: slow.cursor });
    expect(slow.rowsChanged).toBe(slow.cursor);
  }, 60_000);
});
