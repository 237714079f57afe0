import { sql, type Kysely } from 'kysely';
import { isBackgroundStep } from '../component/definitions.ts';
import type { SiteCode } from '../component/discover.ts';
import { loadUpgrade } from '../component/files.ts';
import { formatBackfillStep } from './formats.ts';
import { migrationErrors } from './errors.ts';
import { batchTuning, BACKGROUND_CHANNEL, migrationFromRow, readBackgroundMigration, readBackgroundMigrations, type BatchTuning, type StoredBackgroundMigration } from './store.ts';
import type { BackgroundMigration, BackgroundStep } from './types.ts';

/**
 * The engine of batched background migrations (DESIGN §4.6): runs one batch at a time, each
 * in its own short transaction, and a worker loop that keeps every queued migration moving.
 *
 * One batch is one transaction that:
 * 1. locks the migration's row `FOR UPDATE SKIP LOCKED`: a second worker (another front,
 *    another process) finds it locked and moves on, so batches of one migration never run
 *    at the same time, and no lock outlives the batch;
 * 2. runs the step's `batch({ db, from, to })` on that transaction, under a savepoint;
 * 3. moves the cursor, the counts and the optimizer's state in the same transaction.
 * So the batch's writes and its bookkeeping commit together or not at all: a worker killed
 * mid-batch (SIGKILL, a lost connection) leaves the row as it was, and the next worker runs
 * the same range again; no range ever commits twice.
 *
 * A failing batch is rolled back to the savepoint and its failure is recorded in the same
 * transaction: it is retried with exponential backoff, and after `attempts` failures its
 * range is halved; a single key that still fails marks the migration `failed`, naming the key
 * and the error.
 *
 * The batch size adapts toward the step's `targetBatchMs` the way GitLab's batch optimizer
 * does ({@link nextBatchSize}), and the worker throttles ({@link BackgroundWorkerOptions}).
 */

/** Options of {@link runBatch} and everything built on it. */
export interface BatchOptions {
  /** Failed attempts of one range before it is split in half (default 3). */
  readonly attempts?: number;
  /** Backoff before the second attempt (default 1000 ms); it doubles with each attempt. */
  readonly retryBaseMs?: number;
  /** Longest backoff (default 60 000 ms). */
  readonly retryMaxMs?: number;
  /** Also work a `paused` migration (the operator's foreground `finish`). Default false. */
  readonly includePaused?: boolean;
}

/** What one call of {@link runBatch} did. */
export type BatchOutcome =
  | {
    /** The range committed with its bookkeeping. */
    readonly kind: 'done';
    readonly from: number;
    readonly to: number;
    readonly rowsChanged: number;
    readonly durationMs: number;
    /** Sessions waiting for locks on the table, or on this batch, just before it committed. */
    readonly lockWaits: number;
    /** This batch's duration over what the EMA predicted for its keys; null for the first. */
    readonly latencyRatio: number | null;
    /** Lock waits, or a latency well above the EMA: the worker pauses longer. */
    readonly pressure: boolean;
    readonly migration: StoredBackgroundMigration;
  }
  | {
    /** The batch failed and was rolled back; it is retried at `retryAt` (halved when `split`). */
    readonly kind: 'retrying';
    readonly from: number;
    readonly to: number;
    readonly error: string;
    readonly split: boolean;
    readonly retryAt: Date | null;
    readonly migration: StoredBackgroundMigration;
  }
  | {
    /** A single key kept failing: the migration is now `failed`. */
    readonly kind: 'failed';
    readonly key: number;
    readonly error: string;
    readonly migration: StoredBackgroundMigration;
  }
  | {
    /**
     * Nothing ran: `locked` (another worker runs a batch of it now), `backoff` (its retry is not
     * due yet), or `state` (it is not queued or running any more).
     */
    readonly kind: 'skipped';
    readonly reason: 'locked' | 'backoff' | 'state';
    readonly migration: StoredBackgroundMigration | undefined;
  };

const TARGET_EFFICIENCY = { low: 0.9, high: 0.95 } as const;
const MAX_MULTIPLIER = 1.2;
const EMA_ALPHA = 0.2;
/** A batch this many times slower than its EMA predicts signals pressure. */
const LATENCY_PRESSURE_RATIO = 2;

/**
 * GitLab's batch optimizer: the EMA of ms per key predicts the next batch's duration at the
 * current size; when that is outside 90–95 % of the target, the size is scaled toward 95 %,
 * by at most 1.2× up or down per batch, and clamped to the step's min and max. Per key rather
 * than per batch, so a size change does not distort the average it is judged by.
 *
 * @example
 * ```ts
 * nextBatchSize(1000, 0.05, { targetBatchMs: 100, min: 100, initial: 1000, max: 50000 }) // 1200
 * ```
 */
export function nextBatchSize(current: number, emaMsPerKey: number, tuning: BatchTuning): number {
  const efficiency = (emaMsPerKey * current) / tuning.targetBatchMs;
  if (efficiency >= TARGET_EFFICIENCY.low && efficiency <= TARGET_EFFICIENCY.high) return clamp(current, tuning.min, tuning.max);
  const multiplier = efficiency <= 0 ? MAX_MULTIPLIER : clamp(TARGET_EFFICIENCY.high / efficiency, 1 / MAX_MULTIPLIER, MAX_MULTIPLIER);
  // Rounded toward the current size, so no step exceeds 1.2×.
  const scaled = multiplier >= 1 ? Math.floor(current * multiplier) : Math.ceil(current * multiplier);
  return clamp(scaled, tuning.min, tuning.max);
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function message(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

/**
 * Runs the next batch of `migration` (only its component and id are used: the row is read
 * again under its lock) with the batch function of `step`. One short transaction; see the
 * file comment for what commits together.
 *
 * @example
 * ```ts
 * const outcome = await runBatch(db, migration, step)
 * if (outcome.kind === 'done') console.log(`keys ${outcome.from}..${outcome.to}: ${outcome.rowsChanged} rows`)
 * ```
 */
export async function runBatch(db: Kysely<any>, migration: Pick<BackgroundMigration, 'component' | 'id'>, step: BackgroundStep, options: BatchOptions = {}): Promise<BatchOutcome> {
  const { component, id } = migration;
  const maxAttempts = Math.max(1, options.attempts ?? 3);
  const retryBaseMs = Math.max(0, options.retryBaseMs ?? 1000);
  const retryMaxMs = Math.max(retryBaseMs, options.retryMaxMs ?? 60_000);
  const tuning = batchTuning(step);
  const runnable = options.includePaused ? ['queued', 'running', 'paused'] : ['queued', 'running'];

  return db.transaction().execute(async (trx): Promise<BatchOutcome> => {
    const { rows: [locked] } = await sql<Parameters<typeof migrationFromRow>[0] & { due: boolean }>`
      select *, (retry_at is null or retry_at <= clock_timestamp()) as due from outageless_background_migration
      where component = ${component} and id = ${id}
      for update skip locked`.execute(trx);
    if (!locked) {
      const current = await readBackgroundMigration(trx, component, id);
      if (!current) throw migrationErrors.unknownMigration(component, id, (await readBackgroundMigrations(trx)).map((m) => `${m.component}/${m.id}`));
      return { kind: 'skipped', reason: 'locked', migration: current };
    }
    const current = migrationFromRow(locked);
    if (!runnable.includes(current.state)) return { kind: 'skipped', reason: 'state', migration: current };
    if (!locked.due) return { kind: 'skipped', reason: 'backoff', migration: current };

    const update = async (set: ReturnType<typeof sql>) => {
      const { rows } = await sql<Parameters<typeof migrationFromRow>[0]>`
        update outageless_background_migration set ${set}, updated_at = now()
        where component = ${component} and id = ${id} returning *`.execute(trx);
      return migrationFromRow(rows[0]!);
    };

    if (current.minKey === null || current.maxKey === null || (current.cursor !== null && current.cursor >= current.maxKey)) {
      // An empty range, or a cursor already at the end: nothing left to run.
      const done = await update(sql`state = 'finished', finished_at = coalesce(finished_at, now())`);
      return { kind: 'skipped', reason: 'state', migration: done };
    }
    // The batch starts at the next key that exists: a gap in the keys (deleted rows, a jump in
    // the sequence) costs one index lookup, not a run of empty batches.
    const { rows: [next] } = await sql<{ key: number | string | null }>`
      select min(${sql.ref(current.key)})::bigint as key from ${sql.table(current.table)}
      where ${sql.ref(current.key)} >= ${current.cursor === null ? current.minKey : current.cursor + 1} and ${sql.ref(current.key)} <= ${current.maxKey}`.execute(trx);
    if (next?.key === null || next?.key === undefined) {
      // No key left in the range (rows deleted since queueing): done.
      const done = await update(sql`state = 'finished', "cursor" = max_key, split_size = null, split_end = null, finished_at = coalesce(finished_at, now())`);
      return { kind: 'skipped', reason: 'state', migration: done };
    }
    const from = Number(next.key);
    const splitting = current.splitSize !== null && current.splitEnd !== null && from <= current.splitEnd;
    const size = splitting ? current.splitSize! : current.batchSize;
    const to = Math.min(from + size - 1, current.maxKey, splitting ? current.splitEnd! : Number.POSITIVE_INFINITY);
    const keys = to - from + 1;

    // A batch must not hold its row locks long behind traffic's: a lock wait past this fails
    // the batch, which is retried later, instead of queueing the site behind it.
    await sql.raw(`set local lock_timeout = '${Math.max(1000, tuning.targetBatchMs * 10)}ms'`).execute(trx);
    await sql`savepoint outageless_batch`.execute(trx);
    const started = performance.now();
    let rowsChanged: number;
    try {
      const result = await step.batch({ db: trx, from, to });
      rowsChanged = Number(result ?? 0);
      if (!Number.isFinite(rowsChanged) || rowsChanged < 0) throw new Error(`batch returned ${String(result)}: it must return the number of rows it changed`);
    } catch (error) {
      await sql`rollback to savepoint outageless_batch`.execute(trx);
      const text = message(error);
      const attempt = current.attempts + 1;
      if (attempt < maxAttempts) {
        const backoff = Math.min(retryMaxMs, retryBaseMs * 2 ** (attempt - 1));
        const after = await update(sql`attempts = ${attempt}, error = ${text}, retry_at = clock_timestamp() + ${`${backoff} milliseconds`}::interval`);
        return { kind: 'retrying', from, to, error: text, split: false, retryAt: after.retryAt, migration: after };
      }
      if (keys > 1) {
        // Halve the failing range; its other half follows it, and past its end the size is back.
        const after = await update(sql`attempts = 0, error = ${text}, retry_at = null, split_size = ${Math.ceil(keys / 2)}, split_end = ${to}`);
        return { kind: 'retrying', from, to, error: text, split: true, retryAt: null, migration: after };
      }
      const failed = await update(sql`state = 'failed', attempts = ${attempt}, error = ${`key ${from}: ${text}`}, failed_key = ${from}, retry_at = null`);
      return { kind: 'failed', key: from, error: text, migration: failed };
    }
    const durationMs = performance.now() - started;
    await sql`release savepoint outageless_batch`.execute(trx);

    // Pressure: sessions waiting for locks on the table, or waiting for this very batch.
    const { rows: [waits] } = await sql<{ waits: number }>`
      select (
        (select count(*) from pg_locks where not granted and relation = to_regclass(${current.table}))
        + (select count(*) from pg_locks waiting join pg_locks mine
             on mine.pid = pg_backend_pid() and mine.locktype = 'transactionid' and mine.granted
            and waiting.locktype = 'transactionid' and waiting.transactionid = mine.transactionid and not waiting.granted)
      )::int as waits`.execute(trx);
    const lockWaits = Number(waits?.waits ?? 0);
    const predicted = current.emaMsPerKey === null ? null : current.emaMsPerKey * keys;
    const latencyRatio = predicted === null || predicted <= 0 ? null : durationMs / predicted;
    const pressure = lockWaits > 0 || (latencyRatio !== null && latencyRatio > LATENCY_PRESSURE_RATIO && durationMs > tuning.targetBatchMs);

    const msPerKey = durationMs / keys;
    const ema = current.emaMsPerKey === null ? msPerKey : EMA_ALPHA * msPerKey + (1 - EMA_ALPHA) * current.emaMsPerKey;
    // A split range says nothing about the healthy size: the optimizer waits for it to end.
    const batchSize = splitting ? current.batchSize : nextBatchSize(current.batchSize, ema, tuning);
    const splitOver = current.splitSize !== null && (!splitting || to >= current.splitEnd!);
    const finished = to >= current.maxKey;
    const state = finished ? 'finished' : current.state === 'paused' ? 'paused' : 'running';
    const after = await update(sql`
      state = ${state}, "cursor" = ${to}, batches = batches + 1, rows_changed = rows_changed + ${rowsChanged},
      batch_size = ${batchSize}, ema_ms_per_key = ${ema}, attempts = 0, retry_at = null, error = null,
      split_size = ${splitOver ? null : current.splitSize}, split_end = ${splitOver ? null : current.splitEnd},
      started_at = coalesce(started_at, now()), finished_at = ${finished ? sql`now()` : null}`);
    return { kind: 'done', from, to, rowsChanged, durationMs, lockWaits, latencyRatio, pressure, migration: after };
  });
}

/**
 * The `phase: 'background'` step `<component>/<id>` of the site's code, loaded from the
 * component's `db/upgrade.ts`. Throws OUTAGELESS_ERR_BACKGROUND_STEP_MISSING when the code
 * has none (a front or worker on older code).
 *
 * @example
 * ```ts
 * const step = await findBackgroundStep(code, 'mod_quiz', 'attempts_v2')
 * ```
 */
export async function findBackgroundStep(code: SiteCode, component: string, id: string): Promise<BackgroundStep> {
  const found = code.components.get(component);
  const file = found ? `${found.versionFile.replace(/version\.ts$/, '')}db/upgrade.ts` : `db/upgrade.ts of ${component}`;
  if (!found) throw migrationErrors.stepMissing(component, id, file);
  // A format backfill (`outageless data backfill`) is a background migration without a step
  // in db/upgrade.ts: its batch is the format's backfill function in db/formats.ts.
  if (id.startsWith('format:')) {
    const backfill = await formatBackfillStep(code, component, id);
    if (!backfill) throw migrationErrors.stepMissing(component, id, file.replace(/upgrade\.ts$/, 'formats.ts'));
    return backfill;
  }
  const upgrade = await loadUpgrade(code, found);
  const step = upgrade.steps.find((candidate) => candidate.id === id);
  if (step && isBackgroundStep(step)) return step;
  // A batched manual action runs as a background migration once an operator queues it.
  if (step?.phase === 'manual' && step.batch && step.table && step.key) {
    return { phase: 'background', version: step.version, id: step.id, description: step.description, table: step.table, key: step.key, batch: step.batch, ...(step.targetBatchMs ? { targetBatchMs: step.targetBatchMs } : {}), ...(step.batchSize ? { batchSize: step.batchSize } : {}) };
  }
  throw migrationErrors.stepMissing(component, id, file);
}

/** Options of {@link finishBackgroundMigration}. */
export interface FinishOptions extends BatchOptions {
  /** Called after every committed batch, with the migration as it now stands. */
  readonly onProgress?: (migration: StoredBackgroundMigration) => void;
  /** Pause between batches (default 0: the operator asked for it now). */
  readonly pauseMs?: number;
  /** Pause after a batch that met pressure (default 1000 ms). */
  readonly pressurePauseMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs the rest of a migration in the foreground (`outageless background finish`), batch by
 * batch under the same rules as the workers (a worker's batch in flight is waited for, never
 * overlapped). A paused migration is finished too: the operator asked for it. Resolves with
 * the finished migration; throws OUTAGELESS_ERR_BACKGROUND_FAILED when a key keeps failing,
 * OUTAGELESS_ERR_BACKGROUND_TRANSITION for a cancelled one.
 *
 * @example
 * ```ts
 * const step = await findBackgroundStep(code, 'mod_quiz', 'attempts_v2')
 * await finishBackgroundMigration(db, 'mod_quiz', step, { onProgress: (m) => bar.update(m.cursor) })
 * ```
 */
export async function finishBackgroundMigration(db: Kysely<any>, component: string, step: BackgroundStep, options: FinishOptions = {}): Promise<StoredBackgroundMigration> {
  const ref = { component, id: step.id };
  for (;;) {
    const migration = await readBackgroundMigration(db, component, step.id);
    if (!migration) throw migrationErrors.unknownMigration(component, step.id, (await readBackgroundMigrations(db)).map((m) => `${m.component}/${m.id}`));
    if (migration.state === 'finished') return migration;
    if (migration.state === 'failed') throw migrationErrors.migrationFailed(component, step.id, migration.failedKey, migration.error ?? 'unknown error');
    if (migration.state === 'cancelled') throw migrationErrors.transitionRefused(component, step.id, 'finish', 'cancelled');
    const outcome = await runBatch(db, ref, step, { ...options, includePaused: true });
    switch (outcome.kind) {
      case 'done':
        options.onProgress?.(outcome.migration);
        if (outcome.pressure) await sleep(options.pressurePauseMs ?? 1000);
        else if (options.pauseMs) await sleep(options.pauseMs);
        break;
      case 'retrying':
        if (outcome.retryAt) await sleep(Math.max(0, outcome.retryAt.getTime() - Date.now()));
        break;
      case 'failed':
        throw migrationErrors.migrationFailed(component, step.id, outcome.key, outcome.error);
      case 'skipped':
        // Another worker's batch is in flight, or a retry is not due: wait a little.
        await sleep(outcome.reason === 'backoff' && outcome.migration?.retryAt ? Math.max(10, outcome.migration.retryAt.getTime() - Date.now()) : 10);
        break;
    }
  }
}

/** What the worker logs through (pino-compatible, like the jobs runtime's logger). */
export interface BackgroundLogger {
  info(bindings: Record<string, unknown>, message: string): void;
  warn(bindings: Record<string, unknown>, message: string): void;
  error(bindings: Record<string, unknown>, message: string): void;
}

/** Options of {@link startBackgroundWorker}. */
export interface BackgroundWorkerOptions extends BatchOptions {
  /** The site database; `listen` wakes the worker on BACKGROUND_CHANNEL (queue, resume, retry). */
  readonly database: { readonly db: Kysely<any>; listen?(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>> };
  /** The site's code: batch functions come from its components' `db/upgrade.ts`. */
  readonly code: SiteCode;
  readonly log?: BackgroundLogger;
  /** How often the table is read for work when there is none (default 1000 ms). */
  readonly pollIntervalMs?: number;
  /** Pause after each batch of a migration (default 20 ms), so traffic gets the table between batches. */
  readonly pauseMs?: number;
  /** Pause after a batch that met pressure: lock waits, or latency over 2× its EMA (default 1000 ms). */
  readonly pressurePauseMs?: number;
  /**
   * Whether this process may work `component`'s migrations now (a front passes its guard:
   * not while the component is paused or the front's code is behind). Default: always.
   */
  readonly mayRun?: (component: string) => boolean | Promise<boolean>;
  /** Called after every batch attempt (for tests and progress displays). */
  readonly onBatch?: (outcome: BatchOutcome) => void;
}

/** A running worker loop. */
export interface BackgroundWorker {
  /** Looks for work now (a migration was queued, resumed or retried). */
  wake(): void;
  /** Stops after the batch in flight has committed (graceful); resolves once stopped. */
  stop(): Promise<void>;
}

const SILENT: BackgroundLogger = { info() {}, warn() {}, error() {} };

/**
 * Starts a loop that works every `queued` or `running` migration whose step the site's code
 * declares: one batch at a time per process, round robin over migrations, throttled.
 * Fronts start one with their jobs runtime; `outageless worker` runs one on its own.
 *
 * @example
 * ```ts
 * const worker = startBackgroundWorker({ database, code, log })
 * process.once('SIGTERM', () => void worker.stop().then(() => process.exit(0)))
 * ```
 */
export function startBackgroundWorker(options: BackgroundWorkerOptions): BackgroundWorker {
  const { database, code } = options;
  const db = database.db;
  const log = options.log ?? SILENT;
  const pollMs = options.pollIntervalMs ?? 1000;
  const pauseMs = options.pauseMs ?? 20;
  const pressurePauseMs = options.pressurePauseMs ?? 1000;
  /** Per migration, no batch before this time (throttle, backoff, another worker's turn). */
  const notBefore = new Map<string, number>();
  /** Problems already logged, so a bad db/upgrade.ts is reported once, not every poll. */
  const reported = new Set<string>();

  let stopped = false;
  let wakeUp: (() => void) | undefined;
  let pendingWake = false;
  const wake = () => {
    pendingWake = true;
    wakeUp?.();
  };
  const idle = (ms: number) => {
    if (pendingWake || stopped) {
      pendingWake = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        pendingWake = false;
        resolve();
      }
      wakeUp = done;
    });
  };

  const stepOf = async (migration: StoredBackgroundMigration): Promise<BackgroundStep | undefined> => {
    try {
      return await findBackgroundStep(code, migration.component, migration.id);
    } catch (error) {
      const key = `${migration.component}/${migration.id}: ${message(error)}`;
      if (!reported.has(key)) {
        reported.add(key);
        log.warn({ component: migration.component, migration: migration.id, err: error }, `outageless background: ${migration.component}/${migration.id} is left to other workers: ${message(error)}`);
      }
      return undefined;
    }
  };

  const pass = async (): Promise<number> => {
    const migrations = await readBackgroundMigrations(db, { states: ['queued', 'running'] });
    let next = Date.now() + pollMs;
    for (const migration of migrations) {
      if (stopped) break;
      const name = `${migration.component}/${migration.id}`;
      const now = Date.now();
      const due = Math.max(notBefore.get(name) ?? 0, migration.retryAt?.getTime() ?? 0);
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      const step = await stepOf(migration);
      if (!step) continue;
      if (options.mayRun && !(await options.mayRun(migration.component))) continue;
      const outcome = await runBatch(db, migration, step, options);
      options.onBatch?.(outcome);
      const after = Date.now();
      switch (outcome.kind) {
        case 'done':
          notBefore.set(name, after + (outcome.pressure ? pressurePauseMs : pauseMs));
          if (outcome.pressure) log.info({ migration: name, lockWaits: outcome.lockWaits, latencyRatio: outcome.latencyRatio }, `outageless background: ${name} backs off: the database is under pressure`);
          if (outcome.migration.state === 'finished') log.info({ migration: name, rows: outcome.migration.rowsChanged, batches: outcome.migration.batches }, `outageless background: ${name} finished`);
          break;
        case 'retrying':
          notBefore.set(name, outcome.retryAt?.getTime() ?? after);
          log.warn({ migration: name, from: outcome.from, to: outcome.to, split: outcome.split }, `outageless background: ${name} batch ${outcome.from}..${outcome.to} failed, ${outcome.split ? 'splitting it' : 'retrying later'}: ${outcome.error}`);
          break;
        case 'failed':
          log.error({ migration: name, key: outcome.key }, `outageless background: ${name} failed at key ${outcome.key}: ${outcome.error}`);
          break;
        case 'skipped':
          notBefore.set(name, after + pauseMs);
          break;
      }
      next = Math.min(next, notBefore.get(name) ?? after);
    }
    return Math.max(0, next - Date.now());
  };

  const loop = (async () => {
    while (!stopped) {
      let wait = pollMs;
      try {
        wait = Math.min(pollMs, await pass());
      } catch (error) {
        if (!stopped) log.error({ err: error }, `outageless background: worker pass failed: ${message(error)}`);
      }
      await idle(wait);
    }
  })();

  let unlisten: (() => Promise<void>) | undefined;
  const listening = database.listen?.(BACKGROUND_CHANNEL, () => wake()).then((stop) => {
    unlisten = stop;
  }).catch((error: unknown) => log.warn({ err: error }, `outageless background: no notifications, polling only: ${message(error)}`));

  return {
    wake,
    async stop() {
      stopped = true;
      wake();
      await loop;
      await listening;
      await unlisten?.().catch(() => {});
    },
  };
}
