/**
 * The engine of batched background migrations (src/migrations): batches in their own
 * transactions with their bookkeeping, the adaptive batch size, retries, splitting down to
 * the failing key, and one batch at a time per migration across workers. PostgreSQL, with a
 * 20,000-row table; one PGlite case checks the same batch transaction runs there.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { ensureStateTables } from '../../src/state/tables.ts';
import { isOutagelessError } from '../../src/errors.ts';
import {
  cancelBackgroundMigration, pauseBackgroundMigration, queueBackgroundMigration, readBackgroundMigration, resumeBackgroundMigration, retryBackgroundMigration,
} from '../../src/migrations/store.ts';
import { finishBackgroundMigration, nextBatchSize, runBatch, startBackgroundWorker, type BatchOutcome } from '../../src/migrations/engine.ts';
import { discoverSite } from '../../src/component/discover.ts';
import type { BackgroundStep, BatchContext } from '../../src/migrations/types.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { createSiteDir, writeBareCore } from '../support/sites.ts';

const ROWS = 20_000;
const COMPONENT = 'local_bg';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A table `name` with keys 1..rows, and `<name>_effect`: one row per key each time a batch migrates it. */
async function makeTable(db: Kysely<any>, name: string, rows = ROWS): Promise<void> {
  await sql`create table ${sql.table(name)} (id bigint primary key, v integer not null, v2 integer)`.execute(db);
  if (rows > 0) await sql`insert into ${sql.table(name)} (id, v) select g, g % 97 from generate_series(1, ${rows}::int) g`.execute(db);
  await sql`create table ${sql.table(`${name}_effect`)} (item bigint not null)`.execute(db);
}

/** The batch every case builds on: fills v2 and records the side effect, in the batch's transaction. */
async function migrate({ db, from, to }: BatchContext, table: string): Promise<number> {
  const result = await sql`update ${sql.table(table)} set v2 = v * 2 where id between ${from} and ${to} and v2 is null`.execute(db);
  await sql`insert into ${sql.table(`${table}_effect`)} (item) select id from ${sql.table(table)} where id between ${from} and ${to}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

function step(id: string, table: string, batch: BackgroundStep['batch'], tuning: Pick<BackgroundStep, 'targetBatchMs' | 'batchSize'> = {}): BackgroundStep {
  return { phase: 'background', version: 2026050100, id, table, key: 'id', batch, ...tuning };
}

/** Keys migrated more than once, and how many distinct keys were migrated. */
async function effects(db: Kysely<any>, table: string): Promise<{ distinct: number; total: number; duplicated: number }> {
  const { rows: [row] } = await sql<{ distinct: number; total: number; duplicated: number }>`
    select count(distinct item)::int as distinct, count(*)::int as total,
      (select count(*)::int from (select item from ${sql.table(`${table}_effect`)} group by item having count(*) > 1) d) as duplicated
    from ${sql.table(`${table}_effect`)}`.execute(db);
  return row!;
}

describe.skipIf(!postgresAvailable)('Background migrations engine (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let database: SiteDatabase;
  let db: Kysely<any>;
  let tableNo = 0;
  let table: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase('bg_engine');
    database = await openDatabase(scratch.url);
    db = database.db;
    await ensureStateTables(db);
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });
  beforeEach(async () => {
    table = `local_bg_item${++tableNo}`;
    await makeTable(db, table);
  });
  afterEach(async () => {
    await sql`delete from outageless_background_migration`.execute(db);
  });

  it('queues once, reads the key range at queue time, and an empty table is finished at once', async () => {
    const s = step('fill', table, (context) => migrate(context, table));
    const first = await db.transaction().execute((trx) => queueBackgroundMigration(trx, { component: COMPONENT, step: s }));
    expect(first.queued).toBe(true);
    expect(first.migration).toMatchObject({ state: 'queued', minKey: 1, maxKey: ROWS, cursor: null, batchSize: 1000, batches: 0, rowsChanged: 0 });
    await sql`insert into ${sql.table(table)} (id, v) values (${ROWS + 1}, 1)`.execute(db);
    const again = await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    expect(again.queued).toBe(false);
    expect(again.migration.maxKey).toBe(ROWS);

    await makeTable(db, `${table}_empty`, 0);
    const empty = await queueBackgroundMigration(db, { component: COMPONENT, step: step('empty', `${table}_empty`, () => 0) });
    expect(empty.migration).toMatchObject({ state: 'finished', minKey: null, maxKey: null });
    expect(empty.migration.finishedAt).toBeInstanceOf(Date);
  });

  it('finish runs every batch in its own transaction with its bookkeeping: each key exactly once, progress exact', async () => {
    const ranges: [number, number][] = [];
    const s = step('fill', table, async (context) => {
      ranges.push([context.from, context.to]);
      return migrate(context, table);
    });
    await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    let progressCalls = 0;
    const done = await finishBackgroundMigration(db, COMPONENT, s, { onProgress: () => progressCalls++ });
    expect(done).toMatchObject({ state: 'finished', cursor: ROWS, rowsChanged: ROWS, batches: ranges.length });
    expect(progressCalls).toBe(ranges.length);
    // Contiguous, non-overlapping ranges covering 1..ROWS.
    expect(ranges[0]![0]).toBe(1);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1] + 1);
    expect(ranges.at(-1)![1]).toBe(ROWS);
    expect(await effects(db, table)).toEqual({ distinct: ROWS, total: ROWS, duplicated: 0 });
    const { rows: [left] } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)} where v2 is distinct from v * 2`.execute(db);
    expect(left!.n).toBe(0);
  });

  it('jumps over gaps in the keys, and ends when the rows left were deleted', async () => {
    await sql`delete from ${sql.table(table)} where id > 1000`.execute(db);
    await sql`insert into ${sql.table(table)} (id, v) select g, 1 from generate_series(1000000001, 1000001000) g`.execute(db);
    await sql`insert into ${sql.table(table)} (id, v) values (2000000000, 1)`.execute(db);
    const ranges: [number, number][] = [];
    const s = step('sparse', table, async (context) => {
      ranges.push([context.from, context.to]);
      return migrate(context, table);
    }, { batchSize: { min: 1000, initial: 1000, max: 1000 } });
    await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    const ref = { component: COMPONENT, id: 'sparse' };
    expect(await runBatch(db, ref, s)).toMatchObject({ kind: 'done', from: 1, to: 1000 });
    expect(await runBatch(db, ref, s)).toMatchObject({ kind: 'done', from: 1_000_000_001, to: 1_000_001_000 });
    await sql`delete from ${sql.table(table)} where id = 2000000000`.execute(db);
    expect(await runBatch(db, ref, s)).toMatchObject({ kind: 'skipped', reason: 'state', migration: { state: 'finished', cursor: 2_000_000_000, rowsChanged: 2000 } });
    expect(ranges).toHaveLength(2);
    expect(await effects(db, table)).toEqual({ distinct: 2000, total: 2000, duplicated: 0 });
  });

  it('adapts the batch size toward targetBatchMs: at most 1.2x per batch, within min and max', async () => {
    // About 20 ms per 1000 keys plus the writes: a 200 ms target wants ~5000 keys, above max 2500.
    const grow: number[] = [];
    const growStep = step('grow', table, async (context) => {
      grow.push(context.to - context.from + 1);
      await sleep((context.to - context.from + 1) / 50);
      return migrate(context, table);
    }, { targetBatchMs: 200, batchSize: { min: 200, initial: 200, max: 2500 } });
    await queueBackgroundMigration(db, { component: COMPONENT, step: growStep });
    await finishBackgroundMigration(db, COMPONENT, growStep);

    // The same cost with a 20 ms target wants under 1000 keys, below min 1000.
    const shrinkTable = `${table}_shrink`;
    await makeTable(db, shrinkTable);
    const shrink: number[] = [];
    const shrinkStep = step('shrink', shrinkTable, async (context) => {
      shrink.push(context.to - context.from + 1);
      await sleep((context.to - context.from + 1) / 50);
      return migrate(context, shrinkTable);
    }, { targetBatchMs: 20, batchSize: { min: 1000, initial: 4000, max: 10_000 } });
    await queueBackgroundMigration(db, { component: COMPONENT, step: shrinkStep });
    await finishBackgroundMigration(db, COMPONENT, shrinkStep);

    for (const [sizes, min, max] of [[grow, 200, 2500], [shrink, 1000, 4000]] as const) {
      const full = sizes.slice(0, -1); // the last batch is cut at the end of the range
      for (const size of full) {
        expect(size).toBeGreaterThanOrEqual(min);
        expect(size).toBeLessThanOrEqual(max);
      }
      for (let i = 1; i < full.length; i++) {
        expect(full[i]! / full[i - 1]!).toBeLessThanOrEqual(1.2);
        expect(full[i]! / full[i - 1]!).toBeGreaterThanOrEqual(1 / 1.2 - 1e-9);
      }
    }
    expect(grow[0]).toBe(200);
    expect(Math.max(...grow)).toBe(2500);
    expect(grow.slice(0, 5)).toEqual([...grow.slice(0, 5)].sort((a, b) => a - b));
    expect(shrink[0]).toBe(4000);
    expect(shrink.slice(0, -1).at(-1)).toBe(1000);
    expect(await effects(db, table)).toEqual({ distinct: ROWS, total: ROWS, duplicated: 0 });
    expect(await effects(db, shrinkTable)).toEqual({ distinct: ROWS, total: ROWS, duplicated: 0 });
  });

  it('the optimizer keeps a size that lands in 90-95 % of the target, and clamps', () => {
    const tuning = { targetBatchMs: 100, min: 100, initial: 1000, max: 50_000 };
    expect(nextBatchSize(1000, 0.0925, tuning)).toBe(1000); // 92.5 ms predicted
    expect(nextBatchSize(1000, 0.01, tuning)).toBe(1200); // far below: capped at 1.2x
    expect(nextBatchSize(1000, 1, tuning)).toBe(834); // far above: capped at 1/1.2
    expect(nextBatchSize(1000, 0.09, tuning)).toBe(1000); // 90 ms: in range
    expect(nextBatchSize(1000, 0.08, tuning)).toBe(1187); // 80 ms -> toward 95 ms
    expect(nextBatchSize(120, 10, tuning)).toBe(100); // clamped to min
    expect(nextBatchSize(49_000, 0.0001, tuning)).toBe(50_000); // clamped to max
  });

  it('retries a batch that fails twice, with backoff, then succeeds', async () => {
    let calls = 0;
    const attempts: number[] = [];
    const s = step('flaky', table, async (context) => {
      if (context.from === 1) {
        attempts.push(performance.now());
        if (++calls <= 2) {
          await migrate(context, table); // rolled back with the failure
          throw new Error(`transient failure ${calls}`);
        }
      }
      return migrate(context, table);
    });
    await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    const outcomes: BatchOutcome[] = [];
    outcomes.push(await runBatch(db, { component: COMPONENT, id: 'flaky' }, s, { retryBaseMs: 100 }));
    expect(outcomes[0]).toMatchObject({ kind: 'retrying', from: 1, to: 1000, split: false, error: 'transient failure 1' });
    expect(await readBackgroundMigration(db, COMPONENT, 'flaky')).toMatchObject({ state: 'queued', cursor: null, attempts: 1, error: 'transient failure 1', batches: 0 });
    // Not due yet: nothing runs.
    expect(await runBatch(db, { component: COMPONENT, id: 'flaky' }, s, { retryBaseMs: 100 })).toMatchObject({ kind: 'skipped', reason: 'backoff' });
    const done = await finishBackgroundMigration(db, COMPONENT, s, { retryBaseMs: 100 });
    expect(calls).toBe(3);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(95); // 100 ms, then 200 ms
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(195);
    expect(done).toMatchObject({ state: 'finished', rowsChanged: ROWS, attempts: 0, error: null });
    expect(await effects(db, table)).toEqual({ distinct: ROWS, total: ROWS, duplicated: 0 });
  });

  it('splits a batch that keeps failing down to the key, marks the migration failed naming it, and retry resumes there', async () => {
    let fixed = false;
    const widths: number[] = [];
    const s = step('bad_row', table, async (context) => {
      widths.push(context.to - context.from + 1);
      const changed = await migrate(context, table);
      if (!fixed && context.from <= 12_345 && 12_345 <= context.to) throw new Error('row 12345 has answers that do not parse');
      return changed;
    });
    await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    const failure = await finishBackgroundMigration(db, COMPONENT, s, { attempts: 2, retryBaseMs: 1 }).catch((error: unknown) => error);
    expect(isOutagelessError(failure, 'OUTAGELESS_ERR_BACKGROUND_FAILED')).toBe(true);
    expect((failure as Error).message).toContain('failed at key 12345: row 12345 has answers that do not parse');
    expect(widths).toContain(1);
    const failed = await readBackgroundMigration(db, COMPONENT, 'bad_row');
    expect(failed).toMatchObject({ state: 'failed', failedKey: 12_345, cursor: 12_344, rowsChanged: 12_344, error: 'key 12345: row 12345 has answers that do not parse' });
    // Everything before the key migrated once, nothing from it on.
    expect(await effects(db, table)).toEqual({ distinct: 12_344, total: 12_344, duplicated: 0 });

    // A failed migration is not worked, and refuses the commands that do not apply.
    expect(await runBatch(db, { component: COMPONENT, id: 'bad_row' }, s)).toMatchObject({ kind: 'skipped', reason: 'state' });
    const refused = await pauseBackgroundMigration(db, COMPONENT, 'bad_row').catch((error: unknown) => error);
    expect(isOutagelessError(refused, 'OUTAGELESS_ERR_BACKGROUND_TRANSITION')).toBe(true);
    expect((refused as { hint: string }).hint).toContain('outageless background retry local_bg/bad_row');

    fixed = true;
    expect(await retryBackgroundMigration(db, COMPONENT, 'bad_row')).toMatchObject({ state: 'running', error: null, failedKey: null, cursor: 12_344, splitSize: null });
    const done = await finishBackgroundMigration(db, COMPONENT, s);
    expect(done).toMatchObject({ state: 'finished', cursor: ROWS, rowsChanged: ROWS });
    expect(await effects(db, table)).toEqual({ distinct: ROWS, total: ROWS, duplicated: 0 });
  });

  it('pause holds the workers off, resume continues at the cursor, cancel is final', async () => {
    const s = step('lifecycle', table, (context) => migrate(context, table));
    await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    expect(await runBatch(db, { component: COMPONENT, id: 'lifecycle' }, s)).toMatchObject({ kind: 'done', from: 1, to: 1000 });
    expect(await pauseBackgroundMigration(db, COMPONENT, 'lifecycle')).toMatchObject({ state: 'paused', cursor: 1000 });
    expect(await runBatch(db, { component: COMPONENT, id: 'lifecycle' }, s)).toMatchObject({ kind: 'skipped', reason: 'state' });
    expect(await resumeBackgroundMigration(db, COMPONENT, 'lifecycle')).toMatchObject({ state: 'running' });
    expect(await runBatch(db, { component: COMPONENT, id: 'lifecycle' }, s)).toMatchObject({ kind: 'done', from: 1001 });
    expect(await cancelBackgroundMigration(db, COMPONENT, 'lifecycle')).toMatchObject({ state: 'cancelled' });
    const again = await resumeBackgroundMigration(db, COMPONENT, 'lifecycle').catch((error: unknown) => error);
    expect(isOutagelessError(again, 'OUTAGELESS_ERR_BACKGROUND_TRANSITION')).toBe(true);
    expect((again as Error).message).toBe('background migration local_bg/lifecycle is cancelled: it cannot be resumed from there');
    const unknown = await pauseBackgroundMigration(db, COMPONENT, 'nope').catch((error: unknown) => error);
    expect(isOutagelessError(unknown, 'OUTAGELESS_ERR_UNKNOWN_BACKGROUND_MIGRATION')).toBe(true);
    expect((unknown as Error).message).toContain('local_bg/lifecycle');
  });

  it('two workers at once never run two batches of one migration at the same time', async () => {
    const second = await openDatabase(scratch.url);
    try {
      let inFlight = 0;
      let overlaps = 0;
      const byWorker = [0, 0];
      const stepFor = (worker: number) => step('shared', table, async (context) => {
        inFlight++;
        if (inFlight > 1) overlaps++;
        await sleep(3);
        const changed = await migrate(context, table);
        inFlight--;
        byWorker[worker]!++;
        return changed;
      }, { batchSize: { min: 100, initial: 500, max: 500 } });
      await queueBackgroundMigration(db, { component: COMPONENT, step: stepFor(0) });
      await Promise.all([
        finishBackgroundMigration(db, COMPONENT, stepFor(0)),
        finishBackgroundMigration(second.db, COMPONENT, stepFor(1)),
      ]);
      expect(overlaps).toBe(0);
      expect(byWorker[0]).toBeGreaterThan(0);
      expect(byWorker[1]).toBeGreaterThan(0);
      expect(byWorker[0]! + byWorker[1]!).toBe(ROWS / 500);
      expect(await effects(db, table)).toEqual({ distinct: ROWS, total: ROWS, duplicated: 0 });
      expect(await readBackgroundMigration(db, COMPONENT, 'shared')).toMatchObject({ state: 'finished', batches: ROWS / 500, rowsChanged: ROWS });
    } finally {
      await second.close();
    }
  });

  it('reports lock waits on the table as pressure', async () => {
    // A no-op batch: only the lock waits of other sessions are measured.
    const probe = step('pressure', table, () => 0, { batchSize: { initial: 100, min: 100, max: 100 } });
    await queueBackgroundMigration(db, { component: COMPONENT, step: probe });
    const blocker = await openDatabase(scratch.url);
    const waiter = await openDatabase(scratch.url);
    try {
      // Session A holds a lock on the table; session B queues behind it: a lock wait on the table.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const holding = blocker.db.transaction().execute(async (trx) => {
        await sql`lock table ${sql.table(table)} in share row exclusive mode`.execute(trx);
        await held;
      });
      await sleep(50);
      const waiting = waiter.db.transaction().execute(async (trx) => {
        await sql`lock table ${sql.table(table)} in share row exclusive mode`.execute(trx);
      });
      await sleep(50);
      const outcome = await runBatch(db, { component: COMPONENT, id: 'pressure' }, probe);
      expect(outcome).toMatchObject({ kind: 'done', pressure: true });
      expect((outcome as { lockWaits: number }).lockWaits).toBeGreaterThanOrEqual(1);
      release();
      await holding;
      await waiting;
      const calm = await runBatch(db, { component: COMPONENT, id: 'pressure' }, probe);
      expect(calm).toMatchObject({ kind: 'done', pressure: false, lockWaits: 0 });
    } finally {
      await blocker.close();
      await waiter.close();
    }
  });

  it('reports a batch much slower than its EMA as pressure', async () => {
    let delay = 5;
    const s = step('latency', table, async () => {
      await sleep(delay);
      return 0;
    }, { targetBatchMs: 20, batchSize: { initial: 100, min: 100, max: 100 } });
    await queueBackgroundMigration(db, { component: COMPONENT, step: s });
    const ref = { component: COMPONENT, id: 'latency' };
    expect(await runBatch(db, ref, s)).toMatchObject({ kind: 'done', latencyRatio: null, pressure: false });
    for (let i = 0; i < 3; i++) expect(await runBatch(db, ref, s)).toMatchObject({ kind: 'done', pressure: false });
    delay = 80;
    const slow = await runBatch(db, ref, s);
    expect(slow).toMatchObject({ kind: 'done', pressure: true, lockWaits: 0 });
    expect((slow as { latencyRatio: number }).latencyRatio).toBeGreaterThan(2);
  });

  it('the worker loop pauses between batches, longer under pressure, and stops after the batch in flight', async () => {
    // A site whose background step hands each batch to this test (same process).
    const site = await createSiteDir();
    try {
      await writeBareCore(site, 2026050100);
      await site.write('plugins/local/bg/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_bg', version: 2026050100, maturity: 'stable' });
`);
      await site.write('plugins/local/bg/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  phase: 'background', version: 2026050100, id: 'looped', table: '${table}', key: 'id', targetBatchMs: 20, batchSize: { initial: 100, min: 100, max: 100 },
  batch: (context) => globalThis.__outagelessTestBatch(context),
}] });
`);
      const code = await discoverSite(site.root);
      const starts: number[] = [];
      const ends: number[] = [];
      let slowAt = 6;
      (globalThis as Record<string, unknown>).__outagelessTestBatch = async (context: BatchContext) => {
        starts.push(performance.now());
        await sleep(starts.length === slowAt ? 90 : 5);
        const changed = await migrate(context, table);
        ends.push(performance.now());
        return changed;
      };
      await queueBackgroundMigration(db, { component: COMPONENT, step: step('looped', table, () => 0, { batchSize: { initial: 100, min: 100, max: 100 } }) });
      const outcomes: BatchOutcome[] = [];
      const worker = startBackgroundWorker({ database, code, pauseMs: 40, pressurePauseMs: 500, pollIntervalMs: 50, onBatch: (outcome) => outcomes.push(outcome) });
      while (starts.length < 9) await sleep(10);
      // Stop while the 10th batch may be in flight: it still commits, and no other starts.
      slowAt = 10;
      while (starts.length < 10) await sleep(1);
      await worker.stop();
      expect(ends.length).toBe(starts.length);
      const row = await readBackgroundMigration(db, COMPONENT, 'looped');
      expect(row).toMatchObject({ batches: starts.length, cursor: starts.length * 100 });
      expect(await effects(db, table)).toEqual({ distinct: starts.length * 100, total: starts.length * 100, duplicated: 0 });
      const pressured = outcomes.findIndex((outcome) => outcome.kind === 'done' && outcome.pressure);
      expect(pressured).toBe(5);
      for (let i = 1; i < starts.length; i++) {
        const gap = starts[i]! - ends[i - 1]!;
        if (i - 1 === pressured) expect(gap).toBeGreaterThanOrEqual(480);
        else {
          expect(gap).toBeGreaterThanOrEqual(35);
          expect(gap).toBeLessThan(480);
        }
      }
    } finally {
      delete (globalThis as Record<string, unknown>).__outagelessTestBatch;
      await site.cleanup();
    }
  });
});

describe('Background migrations engine (PGlite)', () => {
  it('runs the same batch transaction on the embedded database', async () => {
    const database = await openDatabase('pglite://memory');
    try {
      await ensureStateTables(database.db);
      await makeTable(database.db, 'local_bg_item', 3000);
      // A fixed batch size: the count of batches must not depend on how fast this machine is.
      const s = step('fill', 'local_bg_item', (context) => migrate(context, 'local_bg_item'), { batchSize: { initial: 1000, min: 1000, max: 1000 } });
      await queueBackgroundMigration(database.db, { component: COMPONENT, step: s });
      const done = await finishBackgroundMigration(database.db, COMPONENT, s);
      expect(done).toMatchObject({ state: 'finished', cursor: 3000, rowsChanged: 3000, batches: 3 });
      expect(await effects(database.db, 'local_bg_item')).toEqual({ distinct: 3000, total: 3000, duplicated: 0 });
    } finally {
      await database.close();
    }
  });
});
