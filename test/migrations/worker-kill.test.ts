/**
 * Acceptance (issue 8): "Killing the worker (SIGKILL) at random points during a background
 * migration, 10 times: it resumes, every row is migrated exactly once (count a side effect),
 * and the progress is right." With the real `outageless worker` binary (dist/) on a site in a
 * temp dir, on PostgreSQL. The batch function sleeps so that kills land mid-batch, records
 * each batch it STARTS in a file (outside the database: it survives the kill), and records
 * each key it migrates in a side-effect table inside the batch's transaction.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { queueBackgroundMigration, readBackgroundMigration } from '../../src/migrations/store.ts';
import type { BackgroundStep } from '../../src/migrations/types.ts';
import { cli, createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const V1 = 2026050100;
const ROWS = 20_000;
const TUNING = { targetBatchMs: 30, batchSize: { min: 50, initial: 100, max: 150 } } as const;

const BACKGROUND_UPGRADE = `import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({
  steps: [{
    phase: 'background',
    version: ${V1},
    id: 'fill_v2',
    description: 'Copy v into v2, batch by batch',
    table: 'local_bg_item',
    key: 'id',
    targetBatchMs: ${TUNING.targetBatchMs},
    batchSize: ${JSON.stringify(TUNING.batchSize)},
    async batch({ db, from, to }) {
      appendFileSync(process.env.BG_STARTS_FILE, from + '-' + to + '\\n');
      await sleep(15);
      const result = await db.updateTable('local_bg_item').set((eb) => ({ v2: eb.ref('v') }))
        .where('id', '>=', from).where('id', '<=', to).where('v2', 'is', null).executeTakeFirst();
      await db.insertInto('local_bg_effect').columns(['item'])
        .expression(db.selectFrom('local_bg_item').select('id').where('id', '>=', from).where('id', '<=', to))
        .execute();
      return Number(result.numUpdatedRows);
    },
  }],
});
`;

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.skipIf(!postgresAvailable)('outageless worker, killed and resumed (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  let startsFile: string;

  const args = () => ['--root', site.root, '--database', scratch.url];
  const worker = () => cli(['worker', ...args(), '--pause', '5', '--poll-interval', '100'], { env: { BG_STARTS_FILE: startsFile }, timeoutMs: 60_000 });
  const migration = async () => (await readBackgroundMigration(database.db, 'local_bg', 'fill_v2'))!;
  const started = () => (existsSync(startsFile) ? readFileSync(startsFile, 'utf8').trim().split('\n').filter(Boolean).length : 0);
  /** Side effects: keys migrated, keys migrated more than once, and items whose key is at or below the cursor. */
  const effects = async (cursor: number | null) => {
    const { rows: [row] } = await sql<{ total: number; duplicated: number; upto: number; filled: number }>`
      select (select count(*)::int from local_bg_effect) as total,
        (select count(*)::int from (select item from local_bg_effect group by item having count(*) > 1) d) as duplicated,
        (select count(*)::int from local_bg_item where id <= ${cursor ?? 0}) as upto,
        (select count(*)::int from local_bg_item where v2 is not null) as filled`.execute(database.db);
    return row!;
  };

  beforeAll(async () => {
    scratch = await createScratchDatabase('bg_worker_kill');
    site = await createSiteDir();
    startsFile = join(site.root, 'batch-starts.log');
    await writeBareCore(site, V1);
    await site.write('plugins/local/bg/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_bg', version: ${V1}, requires: ${V1}, maturity: 'stable' });
`);
    await site.write('plugins/local/bg/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    local_bg_item: { columns: { id: { type: 'bigint', autoIncrement: true }, v: { type: 'integer' }, v2: { type: 'integer', nullable: true } }, primaryKey: ['id'] },
    local_bg_effect: { columns: { id: { type: 'bigint', autoIncrement: true }, item: { type: 'bigint' } }, primaryKey: ['id'] },
  },
});
`);
    await site.write('plugins/local/bg/db/upgrade.ts', `import { defineUpgrade } from 'outageless';\nexport default defineUpgrade({ steps: [] });\n`);
    const install = await cli(['upgrade', ...args(), '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    // The background step arrives with the data already there, as on a live site.
    await site.write('plugins/local/bg/db/upgrade.ts', BACKGROUND_UPGRADE);
    database = await openDatabase(scratch.url);
    await sql`insert into local_bg_item (v) select g from generate_series(1, ${ROWS}::int) g`.execute(database.db);
    const step: BackgroundStep = { phase: 'background', version: V1, id: 'fill_v2', table: 'local_bg_item', key: 'id', batch: () => 0, ...TUNING };
    const queued = await queueBackgroundMigration(database.db, { component: 'local_bg', step });
    expect(queued.migration).toMatchObject({ state: 'queued', minKey: 1, maxKey: ROWS });
  });

  afterAll(async () => {
    await database?.close();
    await site?.cleanup();
    await scratch?.drop();
  });

  it('SIGKILLed 10 times at random points: it resumes, every row is migrated exactly once, the progress is right', async () => {
    let lastCursor = 0;
    for (let kill = 1; kill <= 10; kill++) {
      const before = (await migration()).batches;
      const run = worker();
      // Let it commit at least one batch, then kill it at a random point.
      await waitFor(`a batch committed by worker ${kill}`, async () => (await migration()).batches > before);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 120));
      run.child.kill('SIGKILL');
      const result = await run;
      expect(result.code, result.stderr).toBe(128);

      const now = await migration();
      expect(now.state).toBe('running');
      expect(now.cursor!).toBeGreaterThan(lastCursor);
      lastCursor = now.cursor!;
      const seen = await effects(now.cursor);
      // What committed is exactly the keys up to the cursor, each once, and the counts agree.
      expect(seen).toEqual({ total: now.cursor, duplicated: 0, upto: now.cursor, filled: now.cursor });
      expect(now.rowsChanged).toBe(now.cursor);
    }
    const afterKills = await migration();
    expect(afterKills.cursor!).toBeLessThan(ROWS);
    // Kills landed mid-batch: batches were started and never committed (they reran).
    const interrupted = started() - afterKills.batches;
    expect(interrupted).toBeGreaterThanOrEqual(1);
    expect(interrupted).toBeLessThanOrEqual(10);

    // SIGTERM is graceful: the batch in flight commits, nothing is left half-done.
    const graceful = worker();
    await waitFor('a batch after the kills', async () => (await migration()).batches > afterKills.batches);
    graceful.child.kill('SIGTERM');
    const stopped = await graceful;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain('SIGTERM: stopped after the batch in flight');
    const afterTerm = await migration();
    expect(started() - afterTerm.batches).toBe(interrupted);

    // A last worker finishes it.
    const last = worker();
    await waitFor('the migration to finish', async () => (await migration()).state === 'finished', 60_000);
    last.child.kill('SIGTERM');
    expect((await last).code).toBe(0);
    const done = await migration();
    expect(done).toMatchObject({ state: 'finished', cursor: ROWS, rowsChanged: ROWS, error: null });
    expect(done.finishedAt).toBeInstanceOf(Date);
    expect(await effects(ROWS)).toEqual({ total: ROWS, duplicated: 0, upto: ROWS, filled: ROWS });
    expect(started() - done.batches).toBe(interrupted);
  }, 180_000);

  it('a front (`outageless serve`) works background migrations too', async () => {
    await sql`create table local_bg_copy (item bigint not null)`.execute(database.db);
    await site.write('plugins/local/bg/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({
  steps: [{
    phase: 'background', version: ${V1}, id: 'copy_ids', table: 'local_bg_item', key: 'id', batchSize: { initial: 2000 },
    async batch({ db, from, to }) {
      const copied = await db.insertInto('local_bg_copy').columns(['item'])
        .expression(db.selectFrom('local_bg_item').select('id').where('id', '>=', from).where('id', '<=', to))
        .returning('item').execute();
      return copied.length;
    },
  }],
});
`);
    const step: BackgroundStep = { phase: 'background', version: V1, id: 'copy_ids', table: 'local_bg_item', key: 'id', batch: () => 0, batchSize: { initial: 2000 } };
    await queueBackgroundMigration(database.db, { component: 'local_bg', step });
    const front = cli(['serve', ...args(), '--port', '0'], { timeoutMs: 60_000 });
    try {
      await waitFor('the front to finish copy_ids', async () => (await readBackgroundMigration(database.db, 'local_bg', 'copy_ids'))?.state === 'finished', 60_000);
    } finally {
      front.child.kill('SIGTERM');
      await front;
    }
    expect(await readBackgroundMigration(database.db, 'local_bg', 'copy_ids')).toMatchObject({ state: 'finished', cursor: ROWS, rowsChanged: ROWS, error: null });
    const { rows: [copied] } = await sql<{ n: number; d: number }>`select count(*)::int as n, count(distinct item)::int as d from local_bg_copy`.execute(database.db);
    expect(copied).toEqual({ n: ROWS, d: ROWS });
  }, 120_000);
});
