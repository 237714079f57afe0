import { sql, type Kysely } from 'kysely';

/**
 * Lock safety for DDL while the site serves (DESIGN §4.7). A DDL statement that waits for
 * its lock makes every later query on the table wait behind it, so the wait itself must be
 * short (`lock_timeout`), and a statement that timed out is retried only after every lock
 * its attempt took has been released. What the retries may cost in total is a budget.
 */

/** The default `lock_timeout` of one attempt: short enough that queued traffic barely notices. */
export const DEFAULT_LOCK_TIMEOUT_MS = 200;
/** The default total lock wait of one step, over all its attempts. */
export const DEFAULT_LOCK_WAIT_MS = 60_000;

const LOCK_NOT_AVAILABLE = '55P03';

/** True when `error` (or one of its causes) is PostgreSQL's "lock not available". */
export function isLockTimeout(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === 'object' && depth < 6; depth++) {
    if ((current as { code?: unknown }).code === LOCK_NOT_AVAILABLE) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Exponential backoff with full jitter (50 ms doubling, capped at 2 s): retrying upgraders
 * never queue in lockstep, and traffic that queued behind an attempt drains in between.
 */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(Math.min(2000, 50 * 2 ** Math.min(attempt - 1, 10)) * (0.5 + random() / 2));
}

/**
 * The total time one step may spend waiting for locks, shared by its helpers and by the
 * runner's retries of the whole step.
 *
 * @example
 * ```ts
 * const budget = createLockWaitBudget(30_000)
 * if (!budget.allows(backoffMs(attempt) + 200)) throw errors.lockWaitExceeded(…)
 * ```
 */
export interface LockWaitBudget {
  readonly totalMs: number;
  /** Milliseconds left. */
  remainingMs(): number;
  /** Whether waiting `ms` more stays within the budget. */
  allows(ms: number): boolean;
  /** Attempts that hit the lock timeout so far. */
  readonly timeouts: number;
  recordTimeout(): number;
}

export function createLockWaitBudget(totalMs: number, now: () => number = () => performance.now()): LockWaitBudget {
  if (!Number.isFinite(totalMs) || totalMs < 0) throw new RangeError(`the lock-wait budget must be a non-negative number of ms, not ${totalMs}`);
  const started = now();
  let timeouts = 0;
  return {
    totalMs,
    remainingMs: () => Math.max(0, totalMs - (now() - started)),
    allows: (ms) => now() - started + ms <= totalMs,
    get timeouts() {
      return timeouts;
    },
    recordTimeout: () => ++timeouts,
  };
}

/** A session that holds a lock the step waited for, as `pg_stat_activity` shows it. */
export interface BlockingSession {
  readonly pid: number;
  readonly application: string;
  readonly state: string | null;
  readonly query: string;
  /** Seconds since its transaction (or, outside one, its query) started. */
  readonly ageSeconds: number;
  /** The lock it holds, e.g. `AccessShareLock`; absent when found by transaction age. */
  readonly mode?: string;
}

/**
 * Who blocks DDL on `table`: sessions holding a granted lock on it. Without a table (raw
 * SQL whose target is unknown), the sessions whose transactions are the oldest.
 */
export async function findBlockers(db: Kysely<any>, table: string | undefined): Promise<readonly BlockingSession[]> {
  type Row = { pid: number; application: string; state: string | null; query: string; age: string | number; mode: string | null };
  const { rows } = table
    ? await sql<Row>`select a.pid, a.application_name as application, a.state, a.query, l.mode,
          extract(epoch from now() - coalesce(a.xact_start, a.query_start)) as age
        from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid
        where l.granted and l.pid <> pg_catalog.pg_backend_pid()
          and l.relation = pg_catalog.to_regclass(pg_catalog.quote_ident(pg_catalog.current_schema()) || '.' || pg_catalog.quote_ident(${table}))
        order by age desc limit 5`.execute(db)
    : await sql<Row>`select a.pid, a.application_name as application, a.state, a.query, null as mode,
          extract(epoch from now() - a.xact_start) as age
        from pg_catalog.pg_stat_activity a
        where a.xact_start is not null and a.pid <> pg_catalog.pg_backend_pid() and a.backend_type = 'client backend'
          and a.datname = pg_catalog.current_database()
        order by a.xact_start limit 5`.execute(db);
  return rows.map((row) => ({
    pid: Number(row.pid),
    application: row.application,
    state: row.state,
    query: row.query,
    ageSeconds: Math.round(Number(row.age) * 10) / 10,
    ...(row.mode ? { mode: row.mode } : {}),
  }));
}

/** One line per blocker, for error messages. */
export function describeBlockers(blockers: readonly BlockingSession[]): string {
  if (blockers.length === 0) return 'no blocking session is left (it ended just now)';
  return blockers
    .map((b) => `pid ${b.pid} (${b.application || 'no application_name'}, ${b.state ?? 'unknown state'}, ${b.ageSeconds}s${b.mode ? `, holds ${b.mode}` : ''}): ${b.query.replace(/\s+/g, ' ').slice(0, 160)}`)
    .join('; ');
}

export async function setLockTimeout(db: Kysely<any>, value: string, local: boolean): Promise<void> {
  await sql`select pg_catalog.set_config('lock_timeout', ${value}, ${local})`.execute(db);
}

export async function readLockTimeout(db: Kysely<any>): Promise<string> {
  const { rows } = await sql<{ value: string }>`select pg_catalog.current_setting('lock_timeout') as value`.execute(db);
  return rows[0]!.value;
}
