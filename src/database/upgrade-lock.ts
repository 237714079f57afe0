import pg from 'pg';
import { sql, type Kysely } from 'kysely';
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
   * Throws `OUTAGELESS_ERR_UPGRADE_LOCK_LOST` unless the lock is still held. The runner calls
   * it inside each step's transaction, before the savepoint commits: if the lock's session
   * died, another upgrader may already be running, and this step must roll back.
   */
  verify(executor: Kysely<any>): Promise<void>;
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
    async tryAcquire(mode, waitSeconds = 0) {
      const host = hostname();
      const client = new pg.Client({
        connectionString,
        // application_name is capped at 63 bytes; the host is last so truncation loses the least.
        application_name: `${APPLICATION_PREFIX} ${mode} ${process.pid} ${host}`.slice(0, 63),
      });
      await client.connect();
      let lost = false;
      // If this connection dies the server has released the lock; verify() reports it
      // before the next savepoint commits.
      client.on('error', () => {
        lost = true;
      });
      client.on('end', () => {
        lost = true;
      });
      try {
        const deadline = Date.now() + waitSeconds * 1000;
        let row: { locked: boolean; since: Date; pid: number } | undefined;
        for (;;) {
          ({ rows: [row] } = await client.query<{ locked: boolean; since: Date; pid: number }>(
            'select pg_try_advisory_lock($1, $2) as locked, now() as since, pg_backend_pid() as pid',
            [LOCK_CLASS, LOCK_OBJECT],
          ));
          if (row?.locked || Date.now() >= deadline) break;
          await sleep(Math.min(250, Math.max(10, deadline - Date.now())));
        }
        if (!row?.locked) {
          await client.end();
          return undefined;
        }
        const backendPid = row.pid;
        const holder: UpgradeLockHolder = { host, pid: process.pid, since: row.since, mode };
        return {
          holder,
          async verify(executor) {
            const { rows } = await sql<{ held: boolean }>`
              select exists (select 1 from pg_locks where locktype = 'advisory' and granted
                and classid = ${LOCK_CLASS} and objid = ${LOCK_OBJECT} and objsubid = 2 and pid = ${backendPid}) as held`.execute(executor);
            if (lost || !rows[0]?.held) throw errors.upgradeLockLost();
          },
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
    async tryAcquire(mode, waitSeconds = 0) {
      const deadline = Date.now() + waitSeconds * 1000;
      while (current && Date.now() < deadline) await sleep(50);
      if (current) return undefined;
      const holder: UpgradeLockHolder = { host: hostname(), pid: process.pid, since: new Date(), mode };
      current = holder;
      return {
        holder,
        async verify() {
          if (current !== holder) throw errors.upgradeLockLost();
        },
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
