/**
 * The lock queue (issue 7): a report holds a read on a table for 10 s while an online step adds
 * a column to it. A plain ALTER would wait behind the report, and every query on the table
 * would wait behind the ALTER. With a 200 ms lock timeout, traffic from the old code on a real
 * front is never blocked for longer than that plus one query, the step completes once the
 * report ends, and with a budget shorter than the report it fails cleanly, naming the report.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFront, type FrontProcess } from '../support/fronts.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';

const V1 = 2026010100;
const V2 = 2026020100;

async function writeSite(site: SiteDir, version: number): Promise<void> {
  await writeBareCore(site, V1);
  await site.write('plugins/local/cat/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_cat', version: ${version}, maturity: 'stable' });
`);
  const late = version >= V2 ? `, late: { type: 'boolean', default: false }` : '';
  await site.write('plugins/local/cat/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({ tables: {
  local_cat_item: { columns: { id: { type: 'bigint', autoIncrement: true }, name: { type: 'varchar(50)', default: '' }, points: { type: 'integer', default: 0 }${late} }, primaryKey: ['id'] },
} });
`);
  await site.write('plugins/local/cat/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${
    version >= V2
      ? `{ version: ${V2}, id: 'cat_add_late', description: 'Flag late items', outage: 'none',
          async run({ schema }) { await schema.addColumn('local_cat_item', 'late', { type: 'boolean', default: false }); } }`
      : ''
  }] });
`);
  // The old code's routes: point reads, single-row updates and inserts, written for release 1.
  await site.write('plugins/local/cat/index.ts', `export default async function routes(app: any): Promise<void> {
  const db = () => app.outageless.database.db;
  app.get('/item/:id', async (request: any) => (await db().selectFrom('local_cat_item').select(['id', 'name', 'points']).where('id', '=', Number(request.params.id)).executeTakeFirst()) ?? null);
  app.put('/item/:id', async (request: any) => { await db().updateTable('local_cat_item').set({ points: Math.floor(Math.random() * 100) }).where('id', '=', Number(request.params.id)).execute(); return { ok: true }; });
  app.post('/item', async () => db().insertInto('local_cat_item').values({ name: 'new', points: 1 }).returning('id').executeTakeFirst());
}
`);
}

interface Traffic {
  stop(): Promise<{ requests: number; errors: number; maxLatencyMs: number; slow: number }>;
}

/** Four HTTP clients in a loop (reads, updates, inserts), each request timed; bounded in time. */
function startTraffic(base: string, rows: number, maxSeconds: number): Traffic {
  let running = true;
  let requests = 0;
  let errors = 0;
  let slow = 0;
  let maxLatencyMs = 0;
  const deadline = Date.now() + maxSeconds * 1000;
  const worker = async (n: number) => {
    for (let i = 0; running && Date.now() < deadline; i++) {
      const id = 1 + ((i * 7 + n * 13) % rows);
      const kind = i % 4;
      const started = performance.now();
      try {
        const response = await fetch(kind === 3 ? `${base}/local_cat/item` : `${base}/local_cat/item/${id}`, {
          method: kind === 3 ? 'POST' : kind === 2 ? 'PUT' : 'GET',
          signal: AbortSignal.timeout(30_000),
        });
        await response.arrayBuffer();
        if (response.status !== 200) errors++;
      } catch {
        errors++;
      }
      const latency = performance.now() - started;
      requests++;
      if (latency > 250) slow++;
      maxLatencyMs = Math.max(maxLatencyMs, latency);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  };
  const workers = [0, 1, 2, 3].map(worker);
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return { requests, errors, maxLatencyMs: Math.round(maxLatencyMs), slow };
    },
  };
}

/** A report: a transaction that read the table and stays open, as a long export would. */
async function holdRead(url: string, seconds: number): Promise<{ pid: number; done: Promise<number> }> {
  const client = new pg.Client({ connectionString: url, application_name: 'nightly-report' });
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  await client.query('begin');
  await client.query('select count(*) from local_cat_item');
  const done = (async () => {
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    await client.query('commit');
    await client.end();
    return Date.now();
  })();
  return { pid: rows[0]!.pid, done };
}

describe.skipIf(!postgresAvailable)('an online step behind a long reader (PostgreSQL, real front, HTTP traffic)', () => {
  let scratch: ScratchDatabase;
  let oldCode: SiteDir;
  let newCode: SiteDir;
  let front: FrontProcess | undefined;
  let admin: pg.Pool;
  const query = async (text: string) => (await admin.query(text)).rows;
  const ROWS = 2000;

  beforeAll(async () => {
    scratch = await createScratchDatabase('lock_queue');
    admin = new pg.Pool({ connectionString: scratch.url, max: 2 });
    oldCode = await createSiteDir();
    newCode = await createSiteDir();
    await writeSite(oldCode, V1);
    await writeSite(newCode, V2);
  });
  afterEach(async () => {
    await front?.stop();
    front = undefined;
  });
  afterAll(async () => {
    await admin?.end();
    await oldCode?.cleanup();
    await newCode?.cleanup();
    await scratch?.drop();
  });

  async function installOldRelease(): Promise<void> {
    await query('drop schema public cascade; create schema public');
    const install = await cli(['upgrade', '--non-interactive', '--root', oldCode.root, '--database', scratch.url]);
    expect(install.code, install.stderr).toBe(0);
    await query(`insert into local_cat_item (name, points) select 'item ' || i, i from generate_series(1, ${ROWS}) i`);
    front = await startFront({ root: oldCode.root, database: scratch.url });
  }

  it('never blocks traffic longer than the lock timeout plus one query, and completes after the reader ends', async () => {
    await installOldRelease();
    const traffic = startTraffic(front!.url, ROWS, 40);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const reader = await holdRead(scratch.url, 10);
    const upgrade = await cli(['upgrade', '--no-maintenance', '--non-interactive', '--lock-timeout', '200', '--lock-wait', '60', '--root', newCode.root, '--database', scratch.url], { timeoutMs: 90_000 });
    const finished = Date.now();
    const readerEnded = await reader.done;
    const seen = await traffic.stop();

    expect(upgrade.code, upgrade.stderr).toBe(0);
    expect(upgrade.stdout).toMatch(/lock timeout on add column local_cat_item\.late; every lock of the attempt released, retry 1/);
    expect(finished).toBeGreaterThanOrEqual(readerEnded);
    expect(await query(`select column_name from information_schema.columns where table_name = 'local_cat_item' and column_name = 'late'`)).toHaveLength(1);
    // What the site saw: no errors from the old code, and no request held up behind the ALTER.
    expect(seen.requests).toBeGreaterThan(100);
    expect(seen.errors).toBe(0);
    expect(seen.maxLatencyMs, JSON.stringify(seen)).toBeLessThanOrEqual(300);
  }, 90_000);

  it('with a budget shorter than the reader, fails cleanly, names the blocker and leaves nothing half-done', async () => {
    await installOldRelease();
    const traffic = startTraffic(front!.url, ROWS, 20);
    const reader = await holdRead(scratch.url, 5);
    const upgrade = await cli(['upgrade', '--no-maintenance', '--non-interactive', '--lock-timeout', '200', '--lock-wait', '2', '--root', newCode.root, '--database', scratch.url], { timeoutMs: 60_000 });
    await reader.done;
    const seen = await traffic.stop();

    expect(upgrade.code, upgrade.stdout).toBe(7);
    expect(upgrade.stderr).toContain('OUTAGELESS_ERR_LOCK_WAIT_EXCEEDED');
    expect(upgrade.stderr).toMatch(/nothing is half-done/);
    expect(upgrade.stderr).toContain(`Blocking the lock on local_cat_item: pid ${reader.pid} (nightly-report, idle in transaction`);
    expect(upgrade.stderr).toContain('select count(*) from local_cat_item');
    expect(upgrade.stderr).toMatch(/fix: Let the blocking session finish or end it \(select pg_terminate_backend\(\d+\)\), or give the step a longer budget with --lock-wait/);
    expect(upgrade.stderr).toContain('component: local_cat');
    expect(upgrade.stderr).toContain('step: cat_add_late');
    // Nothing half-done: no column, the version unmoved, the failure logged.
    expect(await query(`select column_name from information_schema.columns where table_name = 'local_cat_item' and column_name = 'late'`)).toEqual([]);
    expect(await query(`select version::int from outageless_component where component = 'local_cat'`)).toEqual([{ version: V1 }]);
    expect(await query(`select step_id from outageless_upgrade_log where status = 'failed'`)).toEqual([{ step_id: 'cat_add_late' }]);
    expect(seen.errors).toBe(0);
    expect(seen.maxLatencyMs, JSON.stringify(seen)).toBeLessThanOrEqual(300);

    // Once the report is gone, the rerun resumes at the step.
    const rerun = await cli(['upgrade', '--no-maintenance', '--non-interactive', '--root', newCode.root, '--database', scratch.url]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await query(`select version::int from outageless_component where component = 'local_cat'`)).toEqual([{ version: V2 }]);
  }, 90_000);
});
