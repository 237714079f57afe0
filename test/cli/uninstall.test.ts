/**
 * Acceptance of `outageless uninstall <component>` (issue 10, "What to build" 2): the example
 * site (release 8, plus a local plugin whose table has a foreign key into block_calendar's) is
 * installed once; plugins' code is then removed and they are uninstalled one by one. After an
 * uninstall their tables and state rows are gone, `check-schema` is clean and nothing is
 * pending. Every refusal (code on disk, a dependency, core, an unknown name, a foreign key, a
 * held upgrade lock, a declined prompt, an install from before tables were recorded) leaves the
 * database as it was.
 *
 * The CLI is spawned where its exit code or its stdin is the point; the other refusals call
 * runUninstall in-process. The cases share one site and run in order.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgBoss } from 'pg-boss';
import { discoverSite } from '../../src/component/discover.ts';
import { loadSchema } from '../../src/component/files.ts';
import { main } from '../../src/cli/main.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { isOutagelessError } from '../../src/errors.ts';
import { eventQueue, JOBS_SCHEMA, taskQueue } from '../../src/jobs/names.ts';
import { readPlan } from '../../src/plan/read.ts';
import type { SchemaDefinition } from '../../src/schema/definition.ts';
import { diffSchema } from '../../src/schema/diff.ts';
import { bumpComponentCacheRevision } from '../../src/state/cache-revisions.ts';
import { isStateTable } from '../../src/state/tables.ts';
import { runUninstall } from '../../src/upgrade/uninstall.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, RELEASES, writeBareCore, type SiteDir } from '../support/sites.ts';

const execFileAsync = promisify(execFile);

/** A plugin whose table references block_calendar's: block_calendar cannot go before it. */
async function writeLinksPlugin(site: SiteDir): Promise<void> {
  await site.write('plugins/local/links/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_links', version: 2026050100, maturity: 'stable' });
`);
  await site.write('plugins/local/links/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    local_links_link: {
      columns: { id: { type: 'bigint', autoIncrement: true }, event: { type: 'bigint' } },
      primaryKey: ['id'],
      foreignKeys: [{ columns: ['event'], references: { table: 'block_calendar_event', columns: ['id'] }, onDelete: 'cascade' }],
    },
  },
});
`);
}

/** Public tables of the site, from information_schema. */
async function publicTables(db: SiteDatabase): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = 'public'`.execute(db.db);
  return rows.map((row) => row.name).sort();
}

/** What `check-schema` compares: every on-disk component's db/schema.ts against the live tables. */
async function schemaDifferences(db: SiteDatabase, root: string): Promise<unknown[]> {
  const code = await discoverSite(root);
  const declared = new Map<string, SchemaDefinition>();
  for (const component of code.components.values()) declared.set(component.name, await loadSchema(code, component));
  return diffSchema(db.db, declared, { exclude: isStateTable });
}

/** Rows of `component` in every state table with a component column. */
async function stateRows(db: SiteDatabase, component: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['outageless_component', 'outageless_component_schema', 'outageless_component_state', 'outageless_owed_step', 'outageless_deferred_task', 'outageless_cache_revision', 'outageless_format', 'outageless_background_migration', 'outageless_owed_manual']) {
    const row = await db.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).where('component', '=', component).executeTakeFirst();
    const n = Number(row?.n ?? 0);
    if (n > 0) counts[table] = n;
  }
  return counts;
}

async function expectRefused(promise: Promise<unknown>, code: string): Promise<{ message: string; hint: string | undefined; location: Record<string, unknown> }> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(isOutagelessError(error) ? error.code : error).toBe(code);
  return error as never;
}

describe.skipIf(!postgresAvailable)('outageless uninstall on PostgreSQL', () => {
  let site: SiteDir;
  let scratch: ScratchDatabase;
  let database: SiteDatabase;
  const run = (args: string[], input?: string) => cli([...args, '--root', site.root, '--database', scratch.url], input === undefined ? {} : { input });
  /** pg_dump's text of every schema and row, byte for byte (the `\restrict` keys vary per run). */
  const snapshot = async () => {
    const dump = async (mode: string) => (await execFileAsync(process.env.PG_DUMP ?? 'pg_dump', [mode, '--no-password', scratch.url], { maxBuffer: 64 << 20 })).stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
    return { schema: await dump('--schema-only'), data: await dump('--data-only') };
  };
  const uninstall = (component: string) => runUninstall({ database, root: site.root, component });

  beforeAll(async () => {
    if (!postgresAvailable) return;
    [site, scratch] = await Promise.all([createSiteDir(8), createScratchDatabase('uninstall')]);
    await writeLinksPlugin(site);
    database = await openDatabase(scratch.url);
    await runUpgrade({ database, code: await discoverSite(site.root) });
    // Queues of block_news (an event queue, a scheduled task with a queued job) and of mod_quiz,
    // as the jobs runtime makes them; pg-boss is stopped again before anything is compared.
    const boss = new PgBoss({ connectionString: scratch.url, schema: JOBS_SCHEMA, schedule: false, supervise: false });
    await boss.start();
    for (const queue of [eventQueue('block_news'), taskQueue('block_news', 'digest'), eventQueue('mod_quiz')]) await boss.createQueue(queue);
    await boss.schedule(taskQueue('block_news', 'digest'), '0 * * * *');
    await boss.send(eventQueue('block_news'), { event: 'core/course_deleted' });
    await boss.send(eventQueue('mod_quiz'), { event: 'core/course_deleted' });
    await boss.stop({ graceful: false });
    // State block_news left behind: a cache revision, a deferred task, an owed post step.
    await bumpComponentCacheRevision(database.db, 'block_news');
    await database.db.insertInto('outageless_deferred_task').values({ component: 'block_news', task: 'digest', parent: null, times: 2 }).execute();
    await database.db.insertInto('outageless_owed_step').values({ component: 'block_news', step_id: 'drop_legacy', version: 2026080100 }).execute();
  }, 120_000);

  afterAll(async () => {
    await database?.close();
    await site?.cleanup();
    await scratch?.drop();
  });

  it('refuses core and an unknown name, naming the installed one it resembles', async () => {
    await expectRefused(uninstall('core'), 'OUTAGELESS_ERR_UNINSTALL_CORE');
    const unknown = await expectRefused(uninstall('block_newz'), 'OUTAGELESS_ERR_COMPONENT_NOT_INSTALLED');
    expect(unknown.hint).toContain('Did you mean `block_news`?');
    expect(unknown.location.component).toBe('block_newz');
    // --json without --yes would print the question into the JSON: a bad command line (64).
    expect(await main(['uninstall', 'block_news', '--json', '--root', site.root, '--database', scratch.url])).toBe(64);
    expect(await publicTables(database)).toContain('block_news_post');
  });

  it('refuses while the code is on disk (exit 1), and the database is byte-equal', async () => {
    const before = await snapshot();
    const refused = await run(['uninstall', 'block_news', '--non-interactive']);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_UNINSTALL_CODE_ON_DISK');
    expect(refused.stderr).toContain('file: plugins/block/news');
    expect(await snapshot()).toEqual(before);
  });

  it('refuses under a held upgrade lock (exit 4) and when the prompt is declined, dropping nothing', async () => {
    await site.remove('plugins/block/news');
    const before = await snapshot();
    const held = await database.upgradeLock.tryAcquire('maintenance');
    try {
      const locked = await run(['uninstall', 'block_news', '--yes']);
      expect(locked.code, locked.stderr).toBe(4);
      expect(locked.stderr).toContain('OUTAGELESS_ERR_UPGRADE_LOCKED');
    } finally {
      await held?.release();
    }
    const declined = await run(['uninstall', 'block_news'], 'n\n');
    expect(declined.code, declined.stderr).toBe(1);
    expect(declined.stderr).toContain('OUTAGELESS_ERR_NOT_CONFIRMED');
    // The prompt showed what it would drop.
    expect(declined.stdout).toContain('drop table block_news_post');
    expect(declined.stdout).toContain(`delete queues (their jobs and schedules): ${eventQueue('block_news')}, ${taskQueue('block_news', 'digest')}`);
    expect(await snapshot()).toEqual(before);
    expect(await publicTables(database)).toContain('block_news_post');
  });

  it('refuses while a live front still runs its code, naming the front', async () => {
    const now = new Date();
    await database.db.insertInto('outageless_front').values({
      id: 'front-old-code', host: 'web1', pid: 4242, url: 'http://web1:3000', root: site.root, started_at: now, last_seen: now,
      components: JSON.stringify({ core: { version: 2026040100 }, block_news: { version: 2026080100 } }),
    }).execute();
    try {
      const refused = await expectRefused(uninstall('block_news'), 'OUTAGELESS_ERR_UNINSTALL_FRONT_RUNS_IT');
      expect(refused.message).toContain('web1 pid 4242 http://web1:3000');
    } finally {
      await database.db.deleteFrom('outageless_front').where('id', '=', 'front-old-code').execute();
    }
    expect(await publicTables(database)).toContain('block_news_post');
  });

  it('uninstalls a plugin whose code is gone: tables, state rows and queues go; check-schema, status and --is-pending are clean', async () => {
    // Its tables are left over until then: check-schema reports them.
    expect((await schemaDifferences(database, site.root)).length).toBeGreaterThan(0);
    expect(Object.keys(await stateRows(database, 'block_news')).sort()).toEqual(['outageless_cache_revision', 'outageless_component', 'outageless_component_schema', 'outageless_deferred_task', 'outageless_format', 'outageless_owed_step']);

    const accepted = await run(['uninstall', 'block_news'], 'y\n');
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain('Uninstalled block_news');

    const tables = await publicTables(database);
    expect(tables.filter((table) => table.startsWith('block_news'))).toEqual([]);
    expect(tables).toContain('block_calendar_event');
    expect(await stateRows(database, 'block_news')).toEqual({});
    const log = await database.db.selectFrom('outageless_upgrade_log').select(['component', 'status']).where('status', '=', 'uninstalled').execute();
    expect(log).toEqual([{ component: 'block_news', status: 'uninstalled' }]);
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      const queues = (await client.query<{ name: string }>(`select name from ${JOBS_SCHEMA}.queue where name like 'outageless.%' order by name`)).rows.map((row) => row.name);
      expect(queues).toEqual([eventQueue('mod_quiz')]);
      const jobs = (await client.query<{ name: string }>(`select name from ${JOBS_SCHEMA}.job where name like 'outageless.%' order by name`)).rows.map((row) => row.name);
      expect(jobs).toEqual([eventQueue('mod_quiz')]);
      expect((await client.query(`select 1 from ${JOBS_SCHEMA}.schedule`)).rowCount).toBe(0);
    } finally {
      await client.end();
    }

    const [checkSchema, status, pending] = await Promise.all([run(['check-schema']), run(['status']), run(['upgrade', '--is-pending'])]);
    expect(checkSchema.code, checkSchema.stdout + checkSchema.stderr).toBe(0);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toContain('block_news');
    expect(pending.code, pending.stdout + pending.stderr).toBe(0);
  });

  it('refuses while components on disk depend on it, naming every one', async () => {
    const kept = join(site.root, '..', `${site.root.split('/').pop()}-quiz`);
    await rename(join(site.root, 'plugins/mod/quiz'), kept);
    // A second dependent (on disk, not installed yet): every one is named, not only the first.
    await site.write('plugins/local/quizstats/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_quizstats', version: 2026050100, maturity: 'stable', dependencies: { mod_quiz: 2026010100 } });
`);
    try {
      const refused = await expectRefused(uninstall('mod_quiz'), 'OUTAGELESS_ERR_UNINSTALL_DEPENDED_ON');
      expect(refused.message).toContain('local_quizstats (plugins/local/quizstats/version.ts), local_reports (plugins/local/reports/version.ts)');
    } finally {
      await rename(kept, join(site.root, 'plugins/mod/quiz'));
      await site.remove('plugins/local/quizstats');
    }
    expect(await publicTables(database)).toContain('quiz');
  });

  it('refuses while a table that stays has a foreign key into its tables, then goes once that one is uninstalled (--json)', async () => {
    await site.remove('plugins/block/calendar');
    const refused = await expectRefused(uninstall('block_calendar'), 'OUTAGELESS_ERR_UNINSTALL_FOREIGN_KEY');
    expect(refused.message).toContain('local_links_link');
    expect(refused.message).toContain('(declared by local_links)');
    expect(await publicTables(database)).toContain('block_calendar_event');

    await site.remove('plugins/local/links');
    await uninstall('local_links');
    const json = await run(['uninstall', 'block_calendar', '--yes', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ result: 'uninstalled', component: 'block_calendar', droppedTables: ['block_calendar_event'], stateRows: { outageless_component: 1 } });
    expect((await publicTables(database)).filter((table) => table.startsWith('block_calendar') || table.startsWith('local_links'))).toEqual([]);
  });

  it('rolls a failed uninstall back whole; uninstalls a plugin together with its subplugins (their code was inside it)', async () => {
    await site.remove('plugins/local/reports');
    // A view on its table makes the drop fail: all of it rolls back, the state rows included.
    await sql`create view reports_view as select * from local_reports_report`.execute(database.db);
    const failed = await expectRefused(uninstall('local_reports'), 'OUTAGELESS_ERR_UNINSTALL_FAILED');
    expect(failed.message).toContain('reports_view');
    expect(await publicTables(database)).toContain('local_reports_report');
    expect(Object.keys(await stateRows(database, 'local_reports'))).toContain('outageless_component');
    await sql`drop view reports_view`.execute(database.db);
    await uninstall('local_reports');
    await site.remove('plugins/mod/assign');
    const result = await uninstall('mod_assign');
    expect(result.plan.targets.map((target) => target.component).sort()).toEqual(['assignsubmission_file', 'assignsubmission_onlinetext', 'mod_assign']);
    expect((await publicTables(database)).filter((table) => table.startsWith('assign'))).toEqual([]);
    for (const component of ['mod_assign', 'assignsubmission_file']) expect(await stateRows(database, component)).toEqual({});
    expect(await schemaDifferences(database, site.root)).toEqual([]);
    expect((await readPlan(database.db, { root: site.root })).plan.pending).toEqual([]);
  });

  it('refuses a component installed before tables were recorded; one `upgrade` with its code back records them', async () => {
    await database.db.deleteFrom('outageless_component_schema').where('component', '=', 'format_topics').execute();
    await site.remove('plugins/format/topics');
    const refused = await expectRefused(uninstall('format_topics'), 'OUTAGELESS_ERR_UNINSTALL_TABLES_UNRECORDED');
    expect(refused.hint).toContain('run `outageless upgrade` once');
    expect(await publicTables(database)).toContain('format_topics_section');

    await cp(join(RELEASES, '8', 'plugins/format/topics'), join(site.root, 'plugins/format/topics'), { recursive: true });
    expect((await runUpgrade({ database, code: await discoverSite(site.root) })).kind).toBe('nothing-to-do');
    await site.remove('plugins/format/topics');
    await uninstall('format_topics');
    expect((await publicTables(database)).filter((table) => table.startsWith('format_topics'))).toEqual([]);
  });
});

/**
 * The embedded case's site: a bare core and one plugin, so PGlite installs it in a fraction of
 * the example site's time. Started before the PostgreSQL cases and awaited by its own test, so
 * PGlite's install overlaps their child processes instead of adding to the file's time.
 */
async function installEmbeddedSite(): Promise<{ site: SiteDir; dir: string; database: SiteDatabase }> {
  const site = await createSiteDir();
  await writeBareCore(site, 2026010100);
  await site.write('plugins/local/notes/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_notes', version: 2026010100, maturity: 'stable' });
`);
  await site.write('plugins/local/notes/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({ tables: {
  local_notes_note: { columns: { id: { type: 'bigint', autoIncrement: true }, body: { type: 'text' } }, primaryKey: ['id'] },
  local_notes_tag: { columns: { note: { type: 'bigint' }, tag: { type: 'varchar(50)' } }, primaryKey: ['note', 'tag'],
    foreignKeys: [{ columns: ['note'], references: { table: 'local_notes_note', columns: ['id'] }, onDelete: 'cascade' }] },
} });
`);
  const dir = await mkdtemp(join(tmpdir(), 'outageless-uninstall-'));
  const database = await openDatabase(await embeddedDatabaseUrl(join(dir, 'db')));
  await runUpgrade({ database, code: await discoverSite(site.root) });
  return { site, dir, database };
}

let embedded: ReturnType<typeof installEmbeddedSite>;
beforeAll(() => {
  embedded = installEmbeddedSite();
  // Its test awaits it and reports a failure; until then it must not count as unhandled.
  embedded.catch(() => {});
});
afterAll(async () => {
  const ready = await embedded.catch(() => undefined);
  await ready?.database.close();
  await ready?.site.cleanup();
  if (ready) await rm(ready.dir, { recursive: true, force: true });
});

describe('outageless uninstall on the embedded database', () => {
  it('drops the tables and state of a plugin whose code is gone, in one transaction', async () => {
    const { site, database } = await embedded;
    await expectRefused(runUninstall({ database, root: site.root, component: 'local_notes' }), 'OUTAGELESS_ERR_UNINSTALL_CODE_ON_DISK');
    await site.remove('plugins/local/notes');
    expect(await schemaDifferences(database, site.root)).toHaveLength(2);
    let asked = 0;
    const result = await runUninstall({ database, root: site.root, component: 'local_notes', confirm: async () => ++asked > 0 });
    expect(asked).toBe(1);
    expect(result.plan.targets[0]?.tables).toEqual(['local_notes_note', 'local_notes_tag']);
    expect((await publicTables(database)).filter((table) => !isStateTable(table))).toEqual([]);
    expect(await stateRows(database, 'local_notes')).toEqual({});
    expect(await schemaDifferences(database, site.root)).toEqual([]);
    expect((await readPlan(database.db, { root: site.root })).plan.pending).toEqual([]);
  }, 120_000);
});
