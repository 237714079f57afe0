/**
 * Databases for tests. Each test file gets its own PostgreSQL database (created from
 * TEST_DATABASE_URL, dropped afterwards), so files run in parallel on one server without
 * sharing advisory locks or tables. Without a server the PostgreSQL tests skip, and say so.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { cp } from 'node:fs/promises';
import { inject } from 'vitest';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? '';

/** True when TEST_DATABASE_URL points at a reachable server (probed once per file). */
export const postgresAvailable: boolean = await probe();

async function probe(): Promise<boolean> {
  if (!TEST_DATABASE_URL) {
    console.warn('[outageless tests] TEST_DATABASE_URL is not set: PostgreSQL tests are SKIPPED.');
    return false;
  }
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch (error) {
    console.warn(`[outageless tests] PostgreSQL at ${TEST_DATABASE_URL} is unreachable (${String(error)}): PostgreSQL tests are SKIPPED.`);
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

export interface ScratchDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** Creates an empty database named after `label` plus a random suffix. */
export async function createScratchDatabase(label: string): Promise<ScratchDatabase> {
  const name = `ol_${label.replace(/[^a-z0-9]+/gi, '_').toLowerCase().slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  await admin((client) => client.query(`create database "${name}"`));
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      admin(async (client) => {
        // Let clients that are closing finish first: a forced drop terminates their sessions,
        // and a pg client that is mid-`end()` then raises an error nobody listens to.
        for (let waited = 0; waited < 3000; waited += 50) {
          const { rows } = await client.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where datname = $1', [name]);
          if (rows[0]!.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await client.query(`drop database if exists "${name}" with (force)`);
      }).then(() => undefined),
  };
}

/**
 * A `pglite://` URL for a new embedded database at `dir` (which must not exist yet): a copy of
 * the run's initialised template, so the first open skips initdb. What the CLI then does to it
 * is exactly what it does to a database it created itself; test/database/embedded-claim.test.ts
 * and the fresh-dir cases that are the point keep letting the CLI create theirs.
 */
export async function embeddedDatabaseUrl(dir: string): Promise<string> {
  const template = inject('pgliteTemplate');
  await cp(template, dir, { recursive: true, errorOnExist: true, force: false });
  return `pglite://${dir}`;
}
