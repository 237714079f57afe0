import pg from 'pg';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { errors } from '../errors.ts';

/**
 * One upgrader at a time, across processes and machines. "An upgrade is running" is
 * derived from this lock and nothing else: there is no stored flag that a killed upgrader
 * could leave behind.
 */

/** `maintenance`: fronts answer 503 while it runs. `online`: fronts keep serving. */
export type UpgradeMode = 'maintenance' | 'online';

export interface UpgradeLockHolder {
  readonly host: string;
  readonly pid: number;
  readonly since: Date;
  readonly mode: UpgradeMode;
}

export interface HeldUpgradeLock {
  readonly holder: UpgradeLockHolder;
  /**
   * The run this lock belongs to. Whatever the run takes (component pauses) is recorded
   * under this id, and {@link UpgradeLock.liveRuns} tells whether the run still holds the lock.
   */
  readonly runId: string;
  /**
   * Throws `OUTAGELESS_ERR_UPGRADE_LOCK_LOST` unless the lock is still held. The runner calls
   * it inside each step's transaction, before the savepoint commits: if the lock's session
   * died, another upgrader may already be running, and this step must roll back.
   */
  verify(executor: Kysely<any>): Promise<void>;
  /**
   * Switches what fronts see: a maintenance-mode run first runs its `pre` steps in `online`
   * mode (fronts serve), then switches to `maintenance` for its `main` steps.
   */
  setMode(mode: UpgradeMode): Promise<void>;
  /**
   * Ties the connection behind `executor` (a pinned connection or a transaction) to the
   * lock until the returned function is called: the moment the lock's session dies, that
   * connection is terminated, so its step stops at once instead of running on unlocked
   * while a second upgrader takes the lock and starts the same step. Throws
   * `OUTAGELESS_ERR_UPGRADE_LOCK_LOST` if the lock is already gone.
   *
   * @example
   * ```ts
   * await db.transaction().execute(async (trx) => {
   *   const unguard = await held.guard(trx)
   *   try { await step.run({ db: trx }) } finally { unguard() }
   * })
   * ```
   */
  guard(executor: Kysely<any>): Promise<() => void>;
  release(): Promise<void>;
}

export interface UpgradeLock {
  /**
   * Takes the lock, polling for up to `waitSeconds` (0: one attempt). Returns undefined
   * when another upgrader still holds it.
   *
   * @example
   * ```ts
   * const held = await site.upgradeLock.tryAcquire('maintenance', 30)
   * if (!held) throw errors.upgradeLocked(await site.upgradeLock.holder())
   * ```
   */
  tryAcquire(mode: UpgradeMode, waitSeconds?: number): Promise<HeldUpgradeLock | undefined>;
  /** Who holds the lock right now, if anyone. */
  holder(): Promise<UpgradeLockHolder | undefined>;
  /**
   * Which of `runIds` still hold the lock. A run that is not in the answer has ended (or its
   * process died), and will never hold it again, so what it left behind can be reclaimed.
   *
   * @example
   * ```ts
   * const live = await site.upgradeLock.liveRuns(['6f1c…'])
   * if (!live.has('6f1c…')) console.log('that run is over')
   * ```
   */
  liveRuns(runIds: readonly string[]): Promise<ReadonlySet<string>>;
}

// Two-int advisory key: 'outl' and 1. Advisory locks are per database, so one site per
// database never collides with another site's lock.
const LOCK_CLASS = 0x6f75746c;
const LOCK_OBJECT = 1;
const APPLICATION_PREFIX = 'outageless-upgrade';
// The lock's session also holds a second advisory lock keyed by its run ('outr' and 32 bits
// of the run id), so "is run X still running" is a lock-free look at pg_locks, and it ends
// with the session exactly like the upgrade lock does.
const RUN_CLASS = 0x6f757472;

/** The run lock's second key: the run id's first 32 bits, as a signed int4. */
function runKey(runId: string): number {
  return Number.parseInt(runId.replaceAll('-', '').slice(0, 8), 16) | 0;
}

/**
 * PostgreSQL: a session advisory lock held on a dedicated connection. If the upgrader dies
 * (even by SIGKILL) the server closes its session and the lock goes with it. The holder's
 * mode, pid and host travel in the connection's `application_name`, so readers learn them
 * from `pg_stat_activity` joined to `pg_locks`.
 */
export function postgresUpgradeLock(connectionString: string, query: (text: string, values?: unknown[]) => Promise<{ rows: any[] }>): UpgradeLock {
  return {
    async tryAcquire(mode, waitSeconds = 0) {
      const host = hostname();
      const client = new pg.Client({
        connectionString,
        // application_name is capped at 63 bytes; the host is last so truncation loses the least.
        application_name: `${APPLICATION_PREFIX} ${mode} ${process.pid} ${host}`.slice(0, 63),
      });
      await client.connect();
      let lost = false;
      let released = false;
      const guarded = new Set<number>();
      // If this connection dies the server has released the lock: a second upgrader may take
      // it at once. Every guarded step connection is terminated right away (from a pool
      // connection, since this one is gone), so no step body runs on without the lock;
      // verify() also reports it before the next savepoint commits.
      const onLost = () => {
        if (lost || released) return;
        lost = true;
        for (const pid of guarded) {
          void query('select pg_terminate_backend($1)', [pid]).catch(() => {
            // The server itself is gone: the step's connection went with it.
          });
        }
      };
      client.on('error', onLost);
      client.on('end', onLost);
      try {
        const deadline = Date.now() + waitSeconds * 1000;
        const runId = randomUUID();
        let row: { locked: boolean; since: Date; pid: number } | undefined;
        for (;;) {
          // The run lock is taken in the same statement, only when the upgrade lock was won,
          // so a live run always holds both.
          ({ rows: [row] } = await client.query<{ locked: boolean; since: Date; pid: number }>(
            `select locked, case when locked then pg_try_advisory_lock($3, $4) end as run_locked, now() as since, pg_backend_pid() as pid
               from (select pg_try_advisory_lock($1, $2) as locked offset 0) l`,
            [LOCK_CLASS, LOCK_OBJECT, RUN_CLASS, runKey(runId)],
          ));
          if (row?.locked || Date.now() >= deadline) break;
          await sleep(Math.min(250, Math.max(10, deadline - Date.now())));
        }
        if (!row?.locked) {
          await client.end();
          return undefined;
        }
        const backendPid = row.pid;
        let holder: UpgradeLockHolder = { host, pid: process.pid, since: row.since, mode };
        return {
          get holder() {
            return holder;
          },
          runId,
          async setMode(next) {
            // Fronts read the mode from pg_stat_activity, which shows the session's current name.
            await client.query('select pg_catalog.set_config($1, $2, false)', ['application_name', `${APPLICATION_PREFIX} ${next} ${process.pid} ${host}`.slice(0, 63)]);
            holder = { ...holder, mode: next };
          },
          async verify(executor) {
            const { rows } = await sql<{ held: boolean }>`
              select exists (select 1 from pg_locks where locktype = 'advisory' and granted
                and classid = ${LOCK_CLASS} and objid = ${LOCK_OBJECT} and objsubid = 2 and pid = ${backendPid}) as held`.execute(executor);
            if (lost || !rows[0]?.held) throw errors.upgradeLockLost();
          },
          async guard(executor) {
            const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(executor);
            const pid = rows[0]!.pid;
            guarded.add(pid);
            if (lost) {
              guarded.delete(pid);
              throw errors.upgradeLockLost();
            }
            return () => {
              guarded.delete(pid);
            };
          },
          async release() {
            released = true;
            // Both locks at once: the run must not look live after the upgrade lock is free.
            await client.query('select pg_advisory_unlock_all()').catch(() => {});
            await client.end().catch(() => {});
          },
        };
      } catch (error) {
        await client.end().catch(() => {});
        throw error;
      }
    },
    async holder() {
      const { rows } = await query(
        `select a.application_name, a.backend_start
           from pg_locks l left join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.granted
            and l.database = (select oid from pg_database where datname = current_database())
            and l.classid = $1 and l.objid = $2 and l.objsubid = 2`,
        [LOCK_CLASS, LOCK_OBJECT],
      );
      const row = rows[0] as { application_name: string | null; backend_start: Date | null } | undefined;
      if (!row) return undefined;
      return parseApplicationName(row.application_name, row.backend_start);
    },
    async liveRuns(runIds) {
      if (runIds.length === 0) return new Set();
      const { rows } = await query(
        `select l.objid::bigint as key from pg_locks l
          where l.locktype = 'advisory' and l.granted
            and l.database = (select oid from pg_database where datname = current_database())
            and l.classid = $1 and l.objsubid = 2`,
        [RUN_CLASS],
      );
      // objid shows the int4 key as an unsigned oid.
      const keys = new Set((rows as { key: string | number }[]).map((row) => Number(row.key)));
      return new Set(runIds.filter((id) => keys.has(runKey(id) >>> 0)));
    },
  };
}

function parseApplicationName(name: string | null, since: Date | null): UpgradeLockHolder {
  // Another role's session may hide application_name; the lock itself is still the truth.
  const [prefix, mode, pid, host] = (name ?? '').split(' ');
  if (prefix !== APPLICATION_PREFIX) return { host: 'unknown', pid: -1, since: since ?? new Date(), mode: 'maintenance' };
  return { host: host ?? 'unknown', pid: Number(pid), since: since ?? new Date(), mode: mode === 'online' ? 'online' : 'maintenance' };
}

/** Embedded (PGlite) sites live in one process, so the lock is that process's memory. */
export function inProcessUpgradeLock(): UpgradeLock {
  let current: UpgradeLockHolder | undefined;
  let currentRun: string | undefined;
  return {
    async tryAcquire(mode, waitSeconds = 0) {
      const deadline = Date.now() + waitSeconds * 1000;
      while (current && Date.now() < deadline) await sleep(50);
      if (current) return undefined;
      let holder: UpgradeLockHolder = { host: hostname(), pid: process.pid, since: new Date(), mode };
      const runId = randomUUID();
      current = holder;
      currentRun = runId;
      return {
        get holder() {
          return holder;
        },
        runId,
        async setMode(next) {
          if (current !== holder) throw errors.upgradeLockLost();
          holder = { ...holder, mode: next };
          current = holder;
        },
        async verify() {
          if (current !== holder) throw errors.upgradeLockLost();
        },
        async guard() {
          // One process: the lock cannot be lost while the step runs.
          if (current !== holder) throw errors.upgradeLockLost();
          return () => {};
        },
        async release() {
          if (current === holder) {
            current = undefined;
            currentRun = undefined;
          }
        },
      };
    },
    async holder() {
      return current;
    },
    async liveRuns(runIds) {
      // The embedded database is open in this process only, so a run of any other process is over.
      return new Set(runIds.filter((id) => id === currentRun));
    },
  };
}
