/**
 * Acceptance (issue 9, data formats), on PostgreSQL with the real CLI and real `outageless
 * serve` fronts: the example site's block_news `post` format across releases 6 → 7 (write 2,
 * read 1) → 8 (read 2). Two fronts of different releases during the rollout, exact coverage
 * counts, the read bump refused for its rows and for its front, a backfill that survives a
 * SIGKILL of `outageless worker`, the bump accepted once rows and fronts are at 2; then bad
 * input, each a coded error with exit 1 and the database unchanged.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { readBackgroundMigration } from '../../src/migrations/store.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { startFront, type FrontProcess } from '../support/fronts.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';

const SEEDED = 3000;
const MIGRATION = 'block_news/format:post:v2';

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!postgresAvailable)('data formats: write raise, backfill, gated read raise (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  const fronts: FrontProcess[] = [];
  /** Posts written by release 6: the seeded ones and release 6's welcome post. */
  let OLD_ROWS = 0;
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => cli([...args, '--root', site.root, '--database', scratch.url], { timeoutMs: 90_000, env });
  const versions = async () =>
    (await sql<{ version: number | null; n: number }>`select format_version as version, count(*)::int as n from block_news_post group by 1 order by 1`.execute(database.db)).rows;
  const installedFormat = async () =>
    (await sql<{ read_version: number; write_version: number }>`select read_version, write_version from outageless_format where component = 'block_news' and format = 'post'`.execute(database.db)).rows;
  const newsVersion = async () => Number((await sql<{ version: string }>`select version from outageless_component where component = 'block_news'`.execute(database.db)).rows[0]!.version);
  const logCount = async () => Number((await sql<{ n: string }>`select count(*) as n from outageless_upgrade_log`.execute(database.db)).rows[0]!.n);

  beforeAll(async () => {
    scratch = await createScratchDatabase('data_formats');
    site = await createSiteDir(6);
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    database = await openDatabase(scratch.url);
    // Posts release 6 wrote: no format yet.
    await sql`insert into block_news_post (course, subject, message) select (select id from course where shortname = 'site'), 'Post ' || g, 'Line one of ' || g || E'\n  line two' from generate_series(1, ${SEEDED}::int) g`.execute(database.db);
    OLD_ROWS = Number((await sql<{ n: string }>`select count(*) as n from block_news_post`.execute(database.db)).rows[0]!.n);
  }, 120_000);
  afterAll(async () => {
    for (const front of fronts) await front.stop().catch(() => {});
    await database?.close();
    await site?.cleanup();
    await scratch?.drop();
  });

  it('two fronts write different versions; coverage is exact; read bump refused (rows, front), accepted after backfill and the old front\'s exit', async () => {
    const oldFront = await startFront({ root: site.root, database: scratch.url });
    fronts.push(oldFront);

    // Release 7 raises write: a new format, class none, recorded with the component.
    await site.deploy(7);
    const check = await run(['upgrade', '--is-maintenance-required']);
    expect(check.code, check.stdout + check.stderr).toBe(3);
    const seven = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(seven.code, seven.stderr).toBe(0);
    expect(await installedFormat()).toEqual([{ read_version: 1, write_version: 2 }]);
    expect(await versions()).toEqual([{ version: 1, n: OLD_ROWS }]);

    const newFront = await startFront({ root: site.root, database: scratch.url });
    fronts.push(newFront);
    // The release-7 front stamps 2; what release-6 code inserts gets the column default, 1.
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${newFront.url}/block_news/post`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ course: 1, subject: `New ${i}`, message: `Written by release 7, number ${i}` }),
      });
      expect(response.status, await response.clone().text()).toBe(200);
      expect(await response.json()).toMatchObject({ formatVersion: 2 });
    }
    await sql`insert into block_news_post (course, subject, message) values (1, 'Old code', 'written as release 6 writes'), (1, 'Old code', 'again')`.execute(database.db);
    const [seeded] = (await sql<{ id: string }>`select id from block_news_post where subject = 'Post 1'`.execute(database.db)).rows;
    const oldRow = await fetch(`${newFront.url}/block_news/post/${seeded!.id}`);
    expect(await oldRow.json()).toMatchObject({ summary: 'Line one of 1 line two', formatVersion: 1 });

    const coverage = await run(['data', 'coverage', '--json']);
    expect(coverage.code, coverage.stderr).toBe(0);
    const [post] = JSON.parse(coverage.stdout).formats;
    expect(post).toMatchObject({
      component: 'block_news', format: 'post', table: 'block_news_post', versionColumn: 'format_version', read: 1, write: 2,
      total: OLD_ROWS + 7, byVersion: [{ version: 1, rows: OLD_ROWS + 2 }, { version: 2, rows: 5 }], atOrAboveWrite: 5,
    });
    expect(post.percentAtOrAboveWrite).toBeCloseTo((100 * 5) / (OLD_ROWS + 7), 6);
    expect(post.fronts).toHaveLength(2);
    expect(post.fronts).toEqual(expect.arrayContaining([
      expect.objectContaining({ pid: oldFront.pid, write: null }),
      expect.objectContaining({ pid: newFront.pid, write: 2, read: 1 }),
    ]));
    const text = await run(['data', 'coverage']);
    expect(text.stdout).toContain(`block_news/post  block_news_post.format_version  read 1  write 2  0.2% at or above 2 (5 of ${OLD_ROWS + 7} rows)`);

    // Release 8 raises read: refused before anything runs, for the rows and for the old front.
    await site.deploy(8);
    const logBefore = await logCount();
    const refused = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_FORMAT_READ_GATE');
    expect(refused.stderr).toContain(`block_news/post: read 1 -> 2: 0.2% of ${OLD_ROWS + 7} rows at or above 2 (${OLD_ROWS + 2} below)`);
    expect(refused.stderr).toContain(`:${oldFront.pid} (writes 0)`);
    expect(refused.stderr).not.toContain(`:${newFront.pid} (writes`);
    expect(await newsVersion()).toBe(2026070100);
    expect(await installedFormat()).toEqual([{ read_version: 1, write_version: 2 }]);
    expect(await logCount()).toBe(logBefore);

    // The old front exits: still refused, now for the rows alone.
    expect((await oldFront.stop()).code).toBe(0);
    const rowsOnly = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(rowsOnly.code).toBe(1);
    expect(rowsOnly.stderr).toContain('OUTAGELESS_ERR_FORMAT_READ_GATE');
    expect(rowsOnly.stderr).not.toContain('live fronts writing below');
    // Fronts work background migrations too: the worker alone works this one.
    expect((await newFront.stop()).code).toBe(0);

    const queued = await run(['data', 'backfill', 'block_news/post', '--json']);
    expect(queued.code, queued.stderr).toBe(0);
    expect(JSON.parse(queued.stdout)).toMatchObject({ queued: true, migration: { name: MIGRATION, state: 'queued' } });

    // A worker SIGKILLed after its first batches: the cursor stands, nothing is lost.
    const worker = cli(['worker', '--root', site.root, '--database', scratch.url, '--poll-interval', '50'], { env: { LMS_BACKFILL_DELAY_MS: '40' }, timeoutMs: 60_000 });
    await waitFor('a committed backfill batch', async () => ((await readBackgroundMigration(database.db, 'block_news', 'format:post:v2'))?.batches ?? 0) >= 2);
    worker.child.kill('SIGKILL');
    expect((await worker).code).toBe(128);
    const killed = (await readBackgroundMigration(database.db, 'block_news', 'format:post:v2'))!;
    expect(killed.state).toBe('running');
    expect(killed.cursor).toBeGreaterThan(0);
    expect(killed.cursor!).toBeLessThan(OLD_ROWS);
    const atTwo = (await versions()).find((entry) => entry.version === 2)!.n;
    expect(atTwo).toBe(5 + killed.rowsChanged);

    const status = await run(['background', 'status', '--json']);
    expect(JSON.parse(status.stdout).backgroundMigrations).toEqual([expect.objectContaining({ name: MIGRATION, state: 'running' })]);
    const finished = await run(['background', 'finish', MIGRATION]);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    expect(await versions()).toEqual([{ version: 2, n: OLD_ROWS + 7 }]);
    const done = (await readBackgroundMigration(database.db, 'block_news', 'format:post:v2'))!;
    expect(done).toMatchObject({ state: 'finished', rowsChanged: OLD_ROWS + 2 });
    const summaries = await sql<{ n: number }>`select count(*)::int as n from block_news_post where summary is null or summary <> left(regexp_replace(message, '\\s+', ' ', 'g'), 100)`.execute(database.db);
    expect(summaries.rows[0]!.n).toBe(0);

    const full = JSON.parse((await run(['data', 'coverage', '--json'])).stdout).formats[0];
    expect(full).toMatchObject({ atOrAboveWrite: OLD_ROWS + 7, percentAtOrAboveWrite: 100, fronts: [] });

    const accepted = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(await newsVersion()).toBe(2026080100);
    expect(await installedFormat()).toEqual([{ read_version: 2, write_version: 2 }]);
  }, 240_000);

  it('bad input: unknown table or column, read above write, a lowered version: coded errors, exit 1, database unchanged', async () => {
    const formats = (body: string) => `import { defineFormats } from 'outageless';\nexport default defineFormats({ post: { ${body} } });\n`;
    const cases: readonly { readonly body: string; readonly code: string; readonly says: string }[] = [
      { body: `table: 'block_news_nope', versionColumn: 'format_version', read: 2, write: 2`, code: 'OUTAGELESS_ERR_FORMAT_UNKNOWN_TABLE', says: 'table "block_news_nope" is not declared' },
      { body: `table: 'block_news_post', versionColumn: 'fmt', read: 2, write: 2`, code: 'OUTAGELESS_ERR_FORMAT_UNKNOWN_COLUMN', says: 'versionColumn "fmt" is not a column of block_news_post' },
      { body: `table: 'block_news_post', versionColumn: 'format_version', read: 3, write: 2`, code: 'OUTAGELESS_ERR_FORMAT_READ_ABOVE_WRITE', says: 'read 3 is above write 2' },
      { body: `table: 'block_news_post', versionColumn: 'format_version', read: 1, write: 2`, code: 'OUTAGELESS_ERR_FORMAT_DOWNGRADE', says: 'read 1 is below the installed read 2' },
      { body: `table: 'block_news_post', versionColumn: 'format_version', read: 1, write: 1`, code: 'OUTAGELESS_ERR_FORMAT_DOWNGRADE', says: 'write 1 is below the installed write 2' },
      { body: `table: 'block_news_post', versionColumn: 'format_version', read: 2, write: 2, reed: 2`, code: 'OUTAGELESS_ERR_MANIFEST_INVALID', says: 'reed' },
    ];
    await site.edit('plugins/block/news/version.ts', (text) => text.replace('version: 2026080100', 'version: 2026090100'));
    const snapshot = async () => ({ version: await newsVersion(), format: await installedFormat(), log: await logCount(), rows: await versions() });
    const before = await snapshot();
    for (const bad of cases) {
      await site.write('plugins/block/news/db/formats.ts', formats(bad.body));
      const result = await run(['upgrade', '--no-maintenance', '--non-interactive']);
      expect(result.code, `${bad.code}: ${result.stderr}`).toBe(1);
      expect(result.stderr).toContain(bad.code);
      expect(result.stderr).toContain(bad.says);
      expect(await snapshot()).toEqual(before);
    }
    // The same errors reach `data backfill` and `serve`'s code: an unknown format is one too.
    await site.write('plugins/block/news/db/formats.ts', formats(`table: 'block_news_post', versionColumn: 'format_version', read: 2, write: 2`));
    const unknown = await run(['data', 'backfill', 'block_news/nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('OUTAGELESS_ERR_FORMAT_UNKNOWN');
    const noBackfill = await run(['data', 'backfill', 'block_news/post']);
    expect(noBackfill.code).toBe(1);
    expect(noBackfill.stderr).toContain('OUTAGELESS_ERR_FORMAT_NO_BACKFILL');
    const malformed = await run(['data', 'backfill', 'block_news']);
    expect(malformed.code).toBe(64);
    expect(await snapshot()).toEqual(before);
    // Raising write alone is class none.
    await site.write('plugins/block/news/db/formats.ts', formats(`table: 'block_news_post', versionColumn: 'format_version', read: 2, write: 3`));
    const raise = await run(['upgrade', '--is-maintenance-required']);
    expect(raise.code, raise.stdout + raise.stderr).toBe(3);
  }, 120_000);
});
