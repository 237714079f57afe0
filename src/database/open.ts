import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { errors } from '../errors.ts';
import { claimEmbeddedDirectory } from './embedded-claim.ts';
import { parseDatabaseUrl, redactDatabaseUrl } from './url.ts';
import { inProcessUpgradeLock, postgresUpgradeLock, type UpgradeLock } from './upgrade-lock.ts';

/**
 * An open site database: a Kysely instance plus what the dialect can do. Everything above
 * this folder talks to the database through it, so a new dialect is added here alone.
 */
export interface SiteDatabase {
  readonly kind: 'postgres' | 'pglite';
  /** The URL with its password redacted, for messages. */
  readonly displayUrl: string;
  readonly db: Kysely<any>;
  /**
   * For writes that must commit on their own, never inside a transaction the process has
   * open on `db` (the runner's progress events while a step's transaction may still roll
   * back). On PostgreSQL it is `db`: a query outside a transaction takes its own pool
   * connection. On PGlite, whose single connection runs every query of `db` inside an open
   * transaction, it is a second view whose queries wait for that transaction to end.
   */
  readonly autocommit: Kysely<any>;
  readonly upgradeLock: UpgradeLock;
  /** True when several processes may share the database (fronts on other machines). */
  readonly multiProcess: boolean;
  /**
   * Calls `onNotify` for every NOTIFY on `channel` until the returned function is called.
   * On PostgreSQL a dedicated connection listens and reconnects after a failure; callers
   * must also poll, because notifications sent while it reconnects are lost.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

function postgresListener(connectionString: string) {
  return async (channel: string, onNotify: (payload: string) => void) => {
    let client: pg.Client | undefined;
    let stopped = false;
    const connect = async (): Promise<void> => {
      if (stopped) return;
      const next = new pg.Client({ connectionString, application_name: 'outageless-front-listener' });
      next.on('notification', (message) => {
        if (message.channel === channel) onNotify(message.payload ?? '');
      });
      next.on('error', () => {
        next.end().catch(() => {});
        if (client === next) setTimeout(() => void connect().catch(() => {}), 1000).unref();
      });
      await next.connect();
      await next.query(`listen "${channel.replaceAll('"', '""')}"`);
      client = next;
    };
    await connect();
    return async () => {
      stopped = true;
      await client?.end().catch(() => {});
    };
  };
}

// int8 columns hold versions (YYYYMMDDXX) and ids; read them as numbers, not strings.
const INT8_OID = 20;
const NUMERIC_SAFE = (value: string) => {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
};

interface SharedEmbedded {
  readonly pglite: import('@electric-sql/pglite').PGlite;
  readonly upgradeLock: UpgradeLock;
  refs: number;
  release(): Promise<void>;
}

// One PGlite instance per data directory per process: every open of the same embedded site
// in this process (a front and a web-started upgrade, say) shares it and its lock.
const embedded = new Map<string, Promise<SharedEmbedded>>();

/**
 * Refuses a `pglite://` path that cannot be a data directory before anything is created: the
 * path itself, or the nearest part of it that exists, must be a directory.
 */
function checkEmbeddedPath(dir: string): void {
  for (let path = dir; ; path = dirname(path)) {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats?.isDirectory()) return;
    if (stats) {
      const kind = stats.isFile() ? 'a regular file' : 'not a directory';
      throw errors.embeddedPath(dir, path === dir ? `${dir} is ${kind}` : `${path} is ${kind}, so no directory can be made below it`);
    }
    if (dirname(path) === path) return;
  }
}

/** Runs a file-system step of opening `dir`, turning its errno failures into a coded error. */
function onEmbeddedPath<T>(dir: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && ['EEXIST', 'ENOTDIR', 'EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'ENAMETOOLONG', 'ELOOP'].includes(code)) {
      throw errors.embeddedPath(dir, (error as Error).message);
    }
    throw error;
  }
}

async function openEmbedded(key: string, dir: string | undefined): Promise<SharedEmbedded> {
  if (dir) onEmbeddedPath(dir, () => checkEmbeddedPath(dir));
  const claim = dir ? onEmbeddedPath(dir, () => claimEmbeddedDirectory(dir)) : undefined;
  try {
    // Loaded lazily: PostgreSQL sites never pay for the embedded engine.
    const { PGlite } = await import('@electric-sql/pglite');
    if (dir) onEmbeddedPath(dir, () => mkdirSync(dir, { recursive: true }));
    const pglite = await PGlite.create(dir ?? undefined, { parsers: { [INT8_OID]: NUMERIC_SAFE } });
    const shared: SharedEmbedded = {
      pglite,
      upgradeLock: inProcessUpgradeLock(),
      refs: 0,
      async release() {
        if (--shared.refs > 0) return;
        embedded.delete(key);
        await pglite.close();
        claim?.release();
      },
    };
    return shared;
  } catch (error) {
    claim?.release();
    throw error;
  }
}

/**
 * Opens the site database at `url` (see {@link resolveDatabaseUrl}).
 *
 * @example
 * ```ts
 * const site = await openDatabase('postgres://postgres@127.0.0.1:5432/lms')
 * try {
 *   await site.db.selectFrom('course').selectAll().execute()
 * } finally {
 *   await site.close()
 * }
 * ```
 */
export async function openDatabase(url: string): Promise<SiteDatabase> {
  const location = parseDatabaseUrl(url);
  const displayUrl = redactDatabaseUrl(url);

  if (location.kind === 'postgres') {
    const pool = new pg.Pool({ connectionString: location.url, max: 5 });
    pool.on('error', () => {}); // an idle client's error must not crash the process; the next query reports it
    pool.on('connect', (client) => {
      client.setTypeParser(INT8_OID, NUMERIC_SAFE);
      // pg-pool listens for errors only while a client is idle. A checked-out client whose
      // connection dies (a server restart, pg_terminate_backend) would otherwise emit an
      // unhandled 'error' and crash the process; its running query rejects with the error
      // anyway, which is how the caller learns of it, and pg-pool drops the dead client on
      // release because it is no longer queryable.
      client.on('error', () => {});
    });
    try {
      const client = await pool.connect();
      client.release();
    } catch (error) {
      await pool.end().catch(() => {});
      throw errors.databaseUnreachable(displayUrl, error);
    }
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    return {
      kind: 'postgres',
      displayUrl,
      db,
      autocommit: db,
      multiProcess: true,
      listen: postgresListener(location.url),
      upgradeLock: postgresUpgradeLock(location.url, (text, values) => pool.query(text, values as unknown[])),
      async close() {
        await db.destroy();
        // Kysely only ends a pool it has used; the connectivity probe's idle client would
        // otherwise keep the process alive for pg's idle timeout.
        if (!pool.ended) await pool.end();
      },
    };
  }

  const key = location.kind === 'pglite' ? location.dir : location.name === undefined ? Symbol('memory').toString() + Math.random() : `memory/${location.name}`;
  let opening = embedded.get(key);
  if (!opening) {
    opening = openEmbedded(key, location.kind === 'pglite' ? location.dir : undefined);
    embedded.set(key, opening);
    opening.catch(() => embedded.delete(key));
  }
  const shared = await opening;
  shared.refs++;
  // Kysely's PGlite driver would close the shared instance on destroy; give it a view whose
  // close() is a no-op and release the instance by reference count instead.
  const pglite = shared.pglite;
  const view = {
    get closed() { return pglite.closed; },
    get ready() { return pglite.ready; },
    get waitReady() { return pglite.waitReady; },
    query: pglite.query.bind(pglite),
    transaction: pglite.transaction.bind(pglite),
    close: async () => {},
  };
  const db = new Kysely<any>({ dialect: new PGliteDialect({ pglite: view }) });
  // Its own dialect, so its own connection object: it never sees db's open transaction, and
  // PGlite runs its queries after that transaction ends (PGlite's transaction mutex).
  const autocommit = new Kysely<any>({ dialect: new PGliteDialect({ pglite: view }) });
  let closed = false;
  return {
    kind: 'pglite',
    displayUrl,
    db,
    autocommit,
    multiProcess: false,
    upgradeLock: shared.upgradeLock,
    async listen(channel, onNotify) {
      const unsubscribe = await pglite.listen(channel, onNotify);
      return async () => unsubscribe();
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      await autocommit.destroy();
      await shared.release();
    },
  };
}

/** Sends a NOTIFY so fronts refresh their cached site state; PGlite fronts share the process. */
export async function notifyStateChanged(db: Kysely<any>, reason: string): Promise<void> {
  await sql`select pg_notify('outageless_state', ${reason})`.execute(db);
}
