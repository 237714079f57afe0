import pg from 'pg';
import { randomBytes } from 'node:crypto';

/** The PostgreSQL server benchmarks use: BENCH_DATABASE_URL, then TEST_DATABASE_URL, then local trust auth. */
export function serverUrl(): string {
  return process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
}

async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** `server_version` of the server, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
export async function postgresVersion(url: string): Promise<string> {
  return withClient(url, async (client) => {
    const result = await client.query<{ server_version: string }>('show server_version');
    return result.rows[0]?.server_version ?? 'unknown';
  });
}

export interface ScratchDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** Creates `outageless_bench_<random>` on the server; drop() removes it (forcing off clients). */
export async function createBenchDatabase(server: string): Promise<ScratchDatabase> {
  const name = `outageless_bench_${randomBytes(4).toString('hex')}`;
  await withClient(server, (client) => client.query(`create database "${name}"`));
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      await withClient(server, (client) => client.query(`drop database if exists "${name}" with (force)`));
    },
  };
}
