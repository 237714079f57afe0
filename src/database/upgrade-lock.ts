import pg from 'pg';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

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
  release(): Promise<void>;
}

export interface UpgradeLock {
  /** Takes the lock, or returns undefined when another upgrader holds it. */
  tryAcquire(mode: UpgradeMode): Promise<HeldUpgradeLock | undefined>;
  /** Who holds the lock right now, if anyone. */
  holder(): Promise<UpgradeLockHolder | undefined>;
}

/**
 * Acquires `lock`, polling until `waitSeconds` have passed. Returns undefined on timeout.
 *
 * @example
 * ```ts
 * const held = await acquireUpgradeLock(site.upgradeLock, 'maintenance', 30)
 * if (!held) throw errors.upgradeLocked(await site.upgradeLock.holder())
 * ```
 */
export async function acquireUpgradeLock(lock: UpgradeLock, mode: UpgradeMode, waitSeconds = 0): Promise<HeldUpgradeLock | undefined> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const held = await lock.tryAcquire(mode);
    if (held || Date.now() >= deadline) return held;
    await sleep(Math.min(200, Math.max(10, deadline - Date.now())));
  }
}

// Two-int advisory key: 'outl' and 1. Advisory locks are per database, so one site per
// database never collides with another site's lock.
const LOCK_CLASS = 0x6f75746c;
const LOCK_OBJECT = 1;
const APPLICATION_PREFIX = 'outageless-upgrade';

/**
 * PostgreSQL: a session advisory lock held on a dedicated connection. If the upgrader dies
 * (even by SIGKILL) the server closes its session and the lock goes with it. The holder's
 * mode, pid and host travel in the connection's `application_name`, so readers learn them
 * from `pg_stat_activity` joined to `pg_locks`.
 */
export function postgresUpgradeLock(connectionString: string, query: (text: string, values?: unknown[]) => Promise<{ rows: any[] }>): UpgradeLock {
  return {
    async tryAcquire(mode) {
      const host = hostname();
      const client = new pg.Client({
        connectionString,
        // application_name is capped at 63 bytes; the host is last so truncation loses the least.
        application_name: `${APPLICATION_PREFIX} ${mode} ${process.pid} ${host}`.slice(0, 63),
      });
      await client.connect();
      // A dead lock connection would leave us believing we hold the lock; failing loudly is
      // the only safe answer, and the server has already released it.
      client.on('error', () => {});
      try {
        const { rows } = await client.query<{ locked: boolean; since: Date }>(
          'select pg_try_advisory_lock($1, $2) as locked, now() as since',
          [LOCK_CLASS, LOCK_OBJECT],
        );
        if (!rows[0]?.locked) {
          await client.end();
          return undefined;
        }
        const holder: UpgradeLockHolder = { host, pid: process.pid, since: rows[0].since, mode };
        return {
          holder,
          async release() {
            await client.query('select pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK_OBJECT]).catch(() => {});
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
  return {
    async tryAcquire(mode) {
      if (current) return undefined;
      const holder: UpgradeLockHolder = { host: hostname(), pid: process.pid, since: new Date(), mode };
      current = holder;
      return {
        holder,
        async release() {
          if (current === holder) current = undefined;
        },
      };
    },
    async holder() {
      return current;
    },
  };
}
