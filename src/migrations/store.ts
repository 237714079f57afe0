import { sql, type Kysely } from 'kysely';
import { tableExists } from '../state/tables.ts';
import { migrationErrors } from './errors.ts';
import type { BackgroundMigration, BackgroundState, BackgroundStep } from './types.ts';

/**
 * The durable state of batched background migrations (DESIGN §4.6), in the framework table
 * `outageless_background_migration`: one row per `<component>/<id>`, holding the key range
 * read at queue time, the cursor (every key up to it is done), the counts, the optimizer's
 * state and the lifecycle state.
 *
 * Lifecycle: `queued → running → paused → finished | failed | cancelled`.
 * - `queued`: waiting for its first batch; `running`: at least one batch ran;
 * - `paused` (from queued/running): no worker touches it until `resume`;
 * - `failed`: a batch kept failing down to a single key; `retry` resumes at that key;
 * - `finished` and `cancelled` are final.
 *
 * Every change is one UPDATE guarded by the states it may start from, so a change races
 * safely with workers and with other operators. A batch holds the row's lock for its short
 * transaction (engine.ts), so `pause` takes effect after the batch in flight, never during it.
 */

/** NOTIFY channel: a queued, resumed or retried migration wakes the workers at once. */
export const BACKGROUND_CHANNEL = 'outageless_background';

/** Defaults of a background step's tuning (BackgroundStep.targetBatchMs and batchSize). */
export const BACKGROUND_DEFAULTS = {
  targetBatchMs: 100,
  batchSize: { min: 100, initial: 1000, max: 50_000 },
} as const;

/** A step's target duration and batch-size bounds, defaults filled in and made consistent. */
export interface BatchTuning {
  readonly targetBatchMs: number;
  readonly min: number;
  readonly initial: number;
  readonly max: number;
}

/**
 * The tuning of `step`: its declared values over {@link BACKGROUND_DEFAULTS}, with
 * `min <= initial <= max`.
 *
 * @example
 * ```ts
 * batchTuning({ ...step, batchSize: { max: 500 } }) // { targetBatchMs: 100, min: 100, initial: 500, max: 500 }
 * ```
 */
export function batchTuning(step: Pick<BackgroundStep, 'targetBatchMs' | 'batchSize'>): BatchTuning {
  const min = Math.max(1, Math.floor(step.batchSize?.min ?? BACKGROUND_DEFAULTS.batchSize.min));
  const max = Math.max(min, Math.floor(step.batchSize?.max ?? BACKGROUND_DEFAULTS.batchSize.max));
  const initial = Math.min(max, Math.max(min, Math.floor(step.batchSize?.initial ?? BACKGROUND_DEFAULTS.batchSize.initial)));
  return { targetBatchMs: Math.max(1, step.targetBatchMs ?? BACKGROUND_DEFAULTS.targetBatchMs), min, initial, max };
}

/**
 * A migration as stored, with the engine's bookkeeping beside the contract's fields: the
 * optimizer's EMA, the failures of the current batch, and the split of a failing range.
 */
export interface StoredBackgroundMigration extends BackgroundMigration {
  /** EMA of the milliseconds per key of successful batches; null before the first. */
  readonly emaMsPerKey: number | null;
  /** Failed attempts of the batch that starts after the cursor. */
  readonly attempts: number;
  /** No attempt before this time (retry backoff); null when due. */
  readonly retryAt: Date | null;
  /** While a failing range is being split: batches of at most this many keys, up to splitEnd. */
  readonly splitSize: number | null;
  readonly splitEnd: number | null;
  /** The single key whose batch failed for good (state `failed`). */
  readonly failedKey: number | null;
}

interface Row {
  component: string;
  id: string;
  version: number | string;
  table_name: string;
  key_column: string;
  state: BackgroundState;
  min_key: number | string | null;
  max_key: number | string | null;
  cursor: number | string | null;
  batch_size: number;
  batches: number | string;
  rows_changed: number | string;
  ema_ms_per_key: number | string | null;
  attempts: number;
  retry_at: Date | null;
  split_size: number | null;
  split_end: number | string | null;
  error: string | null;
  failed_key: number | string | null;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

const nullableNumber = (value: number | string | null): number | null => (value === null ? null : Number(value));

/** Maps a row of `outageless_background_migration` (int8 and numeric may arrive as strings). */
export function migrationFromRow(row: Row): StoredBackgroundMigration {
  return {
    component: row.component,
    id: row.id,
    version: Number(row.version),
    table: row.table_name,
    key: row.key_column,
    state: row.state,
    minKey: nullableNumber(row.min_key),
    maxKey: nullableNumber(row.max_key),
    cursor: nullableNumber(row.cursor),
    batchSize: Number(row.batch_size),
    batches: Number(row.batches),
    rowsChanged: Number(row.rows_changed),
    error: row.error,
    queuedAt: new Date(row.queued_at),
    startedAt: row.started_at === null ? null : new Date(row.started_at),
    finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
    updatedAt: new Date(row.updated_at),
    emaMsPerKey: nullableNumber(row.ema_ms_per_key),
    attempts: Number(row.attempts),
    retryAt: row.retry_at === null ? null : new Date(row.retry_at),
    splitSize: row.split_size === null ? null : Number(row.split_size),
    splitEnd: nullableNumber(row.split_end),
    failedKey: nullableNumber(row.failed_key),
  };
}

/** Input of {@link queueBackgroundMigration}. */
export interface QueueBackgroundMigration {
  readonly component: string;
  readonly step: BackgroundStep;
}

/** What {@link queueBackgroundMigration} did. */
export interface QueueResult {
  /** False when the migration was already queued (in any state): nothing changed. */
  readonly queued: boolean;
  readonly migration: StoredBackgroundMigration;
}

/**
 * Queues the background migration of `step` for `component`, once: a migration already
 * queued (in any state, finished and cancelled included) is left as it is. The key range is
 * `min(key)..max(key)` of `step.table` now; rows added later are written by the new code and
 * need no migration. An empty table is queued as `finished`. Call it inside the transaction
 * that records the step's version (its savepoint), so the queueing commits with it.
 *
 * @example
 * ```ts
 * await db.transaction().execute(async (trx) => {
 *   await queueBackgroundMigration(trx, { component: 'mod_quiz', step })
 *   await writeSavepoint(trx, 'mod_quiz', step.version)
 * })
 * ```
 */
export async function queueBackgroundMigration(trx: Kysely<any>, input: QueueBackgroundMigration): Promise<QueueResult> {
  const { component, step } = input;
  const existing = await readBackgroundMigration(trx, component, step.id);
  if (existing) return { queued: false, migration: existing };
  if (!(await tableExists(trx, step.table))) throw migrationErrors.tableMissing(component, step.id, step.table);
  const { rows: [range] } = await sql<{ min_key: number | string | null; max_key: number | string | null }>`
    select min(${sql.ref(step.key)})::bigint as min_key, max(${sql.ref(step.key)})::bigint as max_key from ${sql.table(step.table)}`.execute(trx);
  const minKey = nullableNumber(range?.min_key ?? null);
  const maxKey = nullableNumber(range?.max_key ?? null);
  const empty = minKey === null || maxKey === null;
  const { rows } = await sql<Row>`
    insert into outageless_background_migration
      (component, id, version, table_name, key_column, state, min_key, max_key, batch_size, finished_at)
    values (${component}, ${step.id}, ${step.version}, ${step.table}, ${step.key}, ${empty ? 'finished' : 'queued'},
      ${minKey}, ${maxKey}, ${batchTuning(step).initial}, ${empty ? sql`now()` : null})
    on conflict (component, id) do nothing
    returning *`.execute(trx);
  // A concurrent queuer won the insert: its row stands.
  if (rows.length === 0) return { queued: false, migration: (await readBackgroundMigration(trx, component, step.id))! };
  if (!empty) await notifyWorkers(trx, component, step.id);
  return { queued: true, migration: migrationFromRow(rows[0]!) };
}

/**
 * Every background migration of the site, oldest queued first; empty on a site whose state
 * tables predate background migrations.
 *
 * @example
 * ```ts
 * for (const migration of await readBackgroundMigrations(db)) console.log(migration.component, migration.id, migration.state)
 * ```
 */
export async function readBackgroundMigrations(db: Kysely<any>, filter: { readonly states?: readonly BackgroundState[] } = {}): Promise<StoredBackgroundMigration[]> {
  if (!(await tableExists(db, 'outageless_background_migration'))) return [];
  const { rows } = await sql<Row>`
    select * from outageless_background_migration
    ${filter.states ? sql`where state = any(${[...filter.states]}::text[])` : sql``}
    order by queued_at, component, id`.execute(db);
  return rows.map(migrationFromRow);
}

/**
 * One background migration, or undefined when none of that name is queued.
 *
 * @example
 * ```ts
 * const migration = await readBackgroundMigration(db, 'mod_quiz', 'attempts_v2')
 * ```
 */
export async function readBackgroundMigration(db: Kysely<any>, component: string, id: string): Promise<StoredBackgroundMigration | undefined> {
  if (!(await tableExists(db, 'outageless_background_migration'))) return undefined;
  const { rows } = await sql<Row>`select * from outageless_background_migration where component = ${component} and id = ${id}`.execute(db);
  return rows[0] ? migrationFromRow(rows[0]) : undefined;
}

/**
 * Splits `<component>/<id>` (the name every `outageless background` command takes); undefined
 * when it is not of that form.
 *
 * @example
 * ```ts
 * parseMigrationName('mod_quiz/attempts_v2') // { component: 'mod_quiz', id: 'attempts_v2' }
 * ```
 */
export function parseMigrationName(name: string): { component: string; id: string } | undefined {
  const slash = name.indexOf('/');
  if (slash <= 0 || slash === name.length - 1) return undefined;
  return { component: name.slice(0, slash), id: name.slice(slash + 1) };
}

/**
 * True when the row with key `key` needs no more migrating: the migration is finished, or
 * the cursor has passed the key, or the key is outside the range read at queue time (a row
 * added since was written by the new code). What `ensureDone` answers from.
 *
 * @example
 * ```ts
 * if (!isKeyMigrated(migration, attemptId)) reply.code(503).header('retry-after', '5')
 * ```
 */
export function isKeyMigrated(migration: BackgroundMigration, key: number): boolean {
  if (migration.state === 'finished') return true;
  if (migration.minKey === null || migration.maxKey === null) return true;
  if (key < migration.minKey || key > migration.maxKey) return true;
  return migration.cursor !== null && key <= migration.cursor;
}

/** Wakes the workers when the surrounding transaction commits. */
export async function notifyWorkers(db: Kysely<any>, component: string, id: string): Promise<void> {
  await sql`select pg_notify(${BACKGROUND_CHANNEL}, ${`${component}/${id}`})`.execute(db);
}

type Command = 'pause' | 'resume' | 'retry' | 'cancel';

/** The states each command may start from. */
const FROM: Readonly<Record<Command, readonly BackgroundState[]>> = {
  pause: ['queued', 'running'],
  resume: ['paused'],
  retry: ['failed'],
  cancel: ['queued', 'running', 'paused', 'failed'],
};

async function transition(db: Kysely<any>, component: string, id: string, command: Command, set: ReturnType<typeof sql>): Promise<StoredBackgroundMigration> {
  const { rows } = await sql<Row>`
    update outageless_background_migration set ${set}, updated_at = now()
    where component = ${component} and id = ${id} and state = any(${[...FROM[command]]}::text[])
    returning *`.execute(db);
  if (rows[0]) {
    if (command === 'resume' || command === 'retry') await notifyWorkers(db, component, id);
    return migrationFromRow(rows[0]);
  }
  const current = await readBackgroundMigration(db, component, id);
  if (!current) {
    const known = (await readBackgroundMigrations(db)).map((m) => `${m.component}/${m.id}`);
    throw migrationErrors.unknownMigration(component, id, known);
  }
  throw migrationErrors.transitionRefused(component, id, command, current.state);
}

/**
 * Pauses a queued or running migration: workers leave it alone until it is resumed. A batch
 * in flight finishes first (the UPDATE waits for its row lock), and none starts after.
 * Throws OUTAGELESS_ERR_BACKGROUND_TRANSITION from any other state,
 * OUTAGELESS_ERR_UNKNOWN_BACKGROUND_MIGRATION for an unknown name.
 *
 * @example
 * ```ts
 * await pauseBackgroundMigration(db, 'mod_quiz', 'attempts_v2')
 * ```
 */
export function pauseBackgroundMigration(db: Kysely<any>, component: string, id: string): Promise<StoredBackgroundMigration> {
  return transition(db, component, id, 'pause', sql`state = 'paused'`);
}

/**
 * Resumes a paused migration where its cursor is (`running`, or `queued` if no batch ran yet).
 *
 * @example
 * ```ts
 * await resumeBackgroundMigration(db, 'mod_quiz', 'attempts_v2')
 * ```
 */
export function resumeBackgroundMigration(db: Kysely<any>, component: string, id: string): Promise<StoredBackgroundMigration> {
  return transition(db, component, id, 'resume', sql`state = case when started_at is null then 'queued' else 'running' end, retry_at = null`);
}

/**
 * Retries a failed migration from the key that failed, at its full batch size, with its
 * failure count and error cleared.
 *
 * @example
 * ```ts
 * await retryBackgroundMigration(db, 'mod_quiz', 'attempts_v2')
 * ```
 */
export function retryBackgroundMigration(db: Kysely<any>, component: string, id: string): Promise<StoredBackgroundMigration> {
  return transition(db, component, id, 'retry', sql`state = case when started_at is null then 'queued' else 'running' end,
    attempts = 0, retry_at = null, split_size = null, split_end = null, error = null, failed_key = null`);
}

/**
 * Cancels a migration that is not finished: final, no batch runs after the one in flight.
 * What was migrated stays migrated.
 *
 * @example
 * ```ts
 * await cancelBackgroundMigration(db, 'mod_quiz', 'attempts_v2')
 * ```
 */
export function cancelBackgroundMigration(db: Kysely<any>, component: string, id: string): Promise<StoredBackgroundMigration> {
  return transition(db, component, id, 'cancel', sql`state = 'cancelled', retry_at = null`);
}
