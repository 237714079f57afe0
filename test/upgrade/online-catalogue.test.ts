/**
 * The strong_migrations catalogue, each case declared `outage: 'none'` (issue 7): every one is
 * either made safe automatically (and then runs with --no-maintenance, and the statements it
 * sent are the safe forms) or raised to `component` with a reason that names the safe
 * alternative. Nothing declared `none` may block or break the code still serving.
 */
import { createQueryId, PostgresQueryCompiler, sql, type KyselyPlugin } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase } from '../../src/database/open.ts';
import { readPlan } from '../../src/plan/read.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';

const V1 = 2026010100;
const V2 = 2026020100;

async function writeSite(site: SiteDir, version: number, step?: string, options = ''): Promise<void> {
  await writeBareCore(site, V1);
  await site.write('plugins/local/cat/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_cat', version: ${version}, maturity: 'stable', maintenance: { disableable: true } });
`);
  // The schema file is not what this test checks (rehearse and the harness do): it only has to change.
  await site.write('plugins/local/cat/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({ tables: {
  local_cat_item: { columns: { id: { type: 'bigint', autoIncrement: true }, name: { type: 'varchar(50)', default: '' }, points: { type: 'integer', nullable: true }, owner: { type: 'bigint', nullable: true } }, primaryKey: ['id'] },
  local_cat_owner: { columns: { id: { type: 'bigint', autoIncrement: true } }, primaryKey: ['id'] },
} });
// release ${version}
`);
  await site.write('plugins/local/cat/db/upgrade.ts', `import { sql } from 'kysely';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${step ? `{ version: ${V2}, id: 'cat_change', outage: 'none', ${options} async run({ db, schema }) { ${step} } }` : ''}] });
`);
}

type Case = {
  readonly name: string;
  readonly step: string;
  /** More keys of the step object, e.g. `transaction: true,`. */
  readonly options?: string;
} & (
  | { readonly expect: 'safe'; readonly sends: readonly RegExp[]; readonly check: (query: (text: string) => Promise<any[]>) => Promise<void> }
  | { readonly expect: 'raised'; readonly reason: RegExp; readonly alternative: RegExp }
);

const CATALOGUE: readonly Case[] = [
  {
    name: 'non-concurrent index',
    step: `await schema.addIndex('local_cat_item', { columns: ['name'] });`,
    expect: 'safe',
    sends: [/create index concurrently if not exists "local_cat_item_name_ix"/],
    check: async (query) => expect(await query(`select indisvalid from pg_index where indexrelid = 'local_cat_item_name_ix'::regclass`)).toEqual([{ indisvalid: true }]),
  },
  {
    name: 'non-concurrent index in raw SQL',
    step: 'await sql`create index local_cat_item_points_ix on local_cat_item (points)`.execute(db);',
    expect: 'raised',
    reason: /builds an index without CONCURRENTLY: writes to the table block/,
    alternative: /schema\.addIndex\(\), which builds it concurrently/,
  },
  {
    name: 'unique index',
    step: `await schema.addIndex('local_cat_item', { columns: ['name'], unique: true });`,
    expect: 'safe',
    sends: [/create unique index concurrently if not exists "local_cat_item_name_uix"/],
    check: async (query) => expect(await query(`select indisvalid, indisunique from pg_index where indexrelid = 'local_cat_item_name_uix'::regclass`)).toEqual([{ indisvalid: true, indisunique: true }]),
  },
  {
    name: 'foreign key',
    step: `await schema.addForeignKey('local_cat_item', { columns: ['owner'], references: { table: 'local_cat_owner', columns: ['id'] } });`,
    expect: 'safe',
    sends: [/add constraint "local_cat_item_owner_fk" foreign key .* not valid/, /validate constraint "local_cat_item_owner_fk"/],
    check: async (query) => expect(await query(`select convalidated from pg_constraint where conname = 'local_cat_item_owner_fk'`)).toEqual([{ convalidated: true }]),
  },
  {
    name: 'inline foreign key (a new table referencing a live one)',
    step: `await schema.createTable('local_cat_tag', { columns: { id: { type: 'bigint', autoIncrement: true }, item: { type: 'bigint' } }, primaryKey: ['id'], foreignKeys: [{ columns: ['item'], references: { table: 'local_cat_item', columns: ['id'] } }] });`,
    expect: 'safe',
    sends: [/create table "local_cat_tag"/],
    check: async (query) => expect((await query(`select count(*)::int as n from pg_constraint where conrelid = 'local_cat_tag'::regclass and contype = 'f'`))[0]).toEqual({ n: 1 }),
  },
  {
    name: 'check constraint',
    step: `await schema.addCheck('local_cat_item', 'local_cat_item_points_ck', 'points >= 0');`,
    expect: 'safe',
    sends: [/add constraint "local_cat_item_points_ck" check \(points >= 0\) not valid/, /validate constraint "local_cat_item_points_ck"/],
    check: async (query) => expect(await query(`select convalidated from pg_constraint where conname = 'local_cat_item_points_ck'`)).toEqual([{ convalidated: true }]),
  },
  {
    name: 'type change',
    step: `await schema.changeColumn('local_cat_item', 'points', { type: 'bigint', nullable: true });`,
    expect: 'raised',
    reason: /changes local_cat_item\.points from integer to bigint: the table is rewritten under an ACCESS EXCLUSIVE lock/,
    alternative: /add a new column of the new type, fill it with schema\.backfill\(\)/,
  },
  {
    name: 'rename of a column',
    step: `await schema.renameColumn('local_cat_item', 'name', 'title');`,
    expect: 'raised',
    reason: /renames local_cat_item\.name, which the installed release still reads/,
    alternative: /add title, write both columns .* drop name in a phase: 'post' step/,
  },
  {
    name: 'rename of a table',
    step: `await schema.renameTable('local_cat_item', 'local_cat_thing');`,
    expect: 'raised',
    reason: /renames local_cat_item, which the installed release reads/,
    alternative: /create local_cat_thing beside local_cat_item/,
  },
  {
    name: 'drop of a column',
    step: `await schema.dropColumn('local_cat_item', 'points');`,
    expect: 'raised',
    reason: /drops local_cat_item\.points, which the installed release reads/,
    alternative: /drop it in a phase: 'post' step/,
  },
  {
    name: 'set NOT NULL (with a default)',
    step: `await schema.changeColumn('local_cat_item', 'points', { type: 'integer', default: 0 });`,
    expect: 'safe',
    sends: [/add constraint "local_cat_item_points_nn" check \("points" is not null\) not valid/, /validate constraint "local_cat_item_points_nn"/, /alter column "points" set not null/],
    check: async (query) => {
      expect(await query(`select attnotnull from pg_attribute where attrelid = 'local_cat_item'::regclass and attname = 'points'`)).toEqual([{ attnotnull: true }]);
      expect(await query(`select count(*)::int as n from local_cat_item where points = 0`)).toEqual([{ n: 10 }]);
      expect(await query(`select conname from pg_constraint where conname = 'local_cat_item_points_nn'`)).toEqual([]);
    },
  },
  {
    name: 'set NOT NULL without a default',
    step: `await schema.changeColumn('local_cat_item', 'points', { type: 'integer' });`,
    expect: 'raised',
    reason: /makes local_cat_item\.points NOT NULL without a default: the installed release's INSERTs that leave it out fail/,
    alternative: /give the column a default/,
  },
  {
    name: 'volatile default',
    step: `await schema.addColumn('local_cat_item', 'token', { type: 'text', default: { sql: 'md5(random()::text)' } });`,
    expect: 'safe',
    sends: [/add column if not exists "token" text$/, /alter column "token" set default md5\(random\(\)::text\)/, /update "local_cat_item" set "token" = md5\(random\(\)::text\) where "id" >= \$1/, /set not null/],
    check: async (query) => {
      expect(await query(`select count(*)::int as n, count(distinct token)::int as d from local_cat_item where token is not null`)).toEqual([{ n: 30, d: 30 }]);
    },
  },
  {
    name: 'a bulk UPDATE in the step',
    step: `await schema.addColumn('local_cat_item', 'score', { type: 'integer', nullable: true });
      await db.updateTable('local_cat_item').set({ score: 1 }).execute();`,
    expect: 'raised',
    reason: /without a where: one statement changes every row, and its row locks block writers until it commits/,
    alternative: /schema\.backfill\(\)/,
  },
  {
    name: 'helpers inside transaction: true',
    step: `await schema.addColumn('local_cat_item', 'extra', { type: 'integer', nullable: true });`,
    options: 'transaction: true,',
    expect: 'raised',
    reason: /transaction: true keeps the lock of every DDL statement .* until the whole step commits/,
    alternative: /leave transaction undeclared/,
  },
];

/** Records every SQL statement a Kysely instance (and its connections and transactions) sends. */
function recorder(): { plugin: KyselyPlugin; statements: string[] } {
  const statements: string[] = [];
  return {
    statements,
    plugin: {
      transformQuery({ node }) {
        statements.push(new PostgresQueryCompiler().compileQuery(node, createQueryId()).sql.replace(/\s+/g, ' ').trim());
        return node;
      },
      transformResult: async ({ result }) => result,
    },
  };
}

describe.skipIf(!postgresAvailable)('strong_migrations catalogue, each declared none (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let admin: pg.Pool;
  const query = async (text: string) => (await admin.query(text)).rows;

  beforeAll(async () => {
    scratch = await createScratchDatabase('online_catalogue');
    admin = new pg.Pool({ connectionString: scratch.url, max: 2 });
    site = await createSiteDir();
  });
  afterAll(async () => {
    await admin?.end();
    await site?.cleanup();
    await scratch?.drop();
  });

  it.each(CATALOGUE.map((c) => [c.name, c] as const))('%s', async (_, testCase) => {
    await query('drop schema public cascade; create schema public');
    await writeSite(site, V1);
    const database = await openDatabase(scratch.url);
    try {
      await runUpgrade({ database, code: await discoverSite(site.root) });
      await query(`insert into local_cat_owner select from generate_series(1, 3)`);
      await query(`insert into local_cat_item (name, points, owner) select 'n' || i, case when i % 3 = 0 then null else i end, 1 from generate_series(1, 30) i`);

      await writeSite(site, V2, testCase.step, testCase.options);
      const code = await discoverSite(site.root);
      const { plan } = await readPlan(database.db, { code });
      const item = plan.pending.find((p) => p.component === 'local_cat')!;
      const step = item.steps[0]!;
      expect(step.declaredOutage).toBe('none');

      if (testCase.expect === 'raised') {
        expect(step.outage).toBe('component');
        expect(item.outage).toBe('component');
        const reasons = item.reasons.join('\n');
        expect(reasons).toMatch(testCase.reason);
        expect(reasons).toMatch(/Safe alternative: /);
        expect(reasons).toMatch(testCase.alternative);
        expect(plan.maintenanceRequired).toBe(false);
        expect(plan.pauses).toEqual(['local_cat']);
        return;
      }

      expect(step.outage).toBe('none');
      expect(step.findings).toEqual([]);
      expect(plan.outage).toBe('none');
      const relfilenode = async () => (await query(`select relfilenode from pg_class where oid = 'local_cat_item'::regclass`))[0].relfilenode;
      const before = await relfilenode();
      const recorded = recorder();
      const result = await runUpgrade({ database: { ...database, db: database.db.withPlugin(recorded.plugin) }, code, mode: 'online' });
      expect(result.kind).toBe('upgraded');
      const ddl = recorded.statements.filter((s) => /^(create|alter|update|drop)\b/i.test(s) && !/outageless_|temporary|outageless_probe/.test(s));
      for (const pattern of testCase.sends) expect(ddl.some((s) => pattern.test(s)), `${pattern} in\n${ddl.join('\n')}`).toBe(true);
      // Never the blocking forms.
      expect(ddl.filter((s) => /^create (unique )?index (?!concurrently)/.test(s) || (/add constraint/.test(s) && !/not valid/.test(s)))).toEqual([]);
      await testCase.check(query);
      // Made safe means no table rewrite either (a rewrite holds ACCESS EXCLUSIVE throughout).
      expect(await relfilenode()).toBe(before);
      expect(await query(`select version::int from outageless_component where component = 'local_cat'`)).toEqual([{ version: V2 }]);
    } finally {
      await database.close();
    }
  });

  it('a raw RENAME that the source does not show is refused at run time, before it is sent, in an online step', async () => {
    await query('drop schema public cascade; create schema public');
    await writeSite(site, V1);
    const database = await openDatabase(scratch.url);
    try {
      await runUpgrade({ database, code: await discoverSite(site.root) });
      // The statement is built at run time, so the plan cannot read it.
      await writeSite(site, V2, "const verb = ['re', 'name'].join(''); await sql.raw('alter table local_cat_item ' + verb + ' column name to title').execute(db);");
      const code = await discoverSite(site.root);
      await expect(runUpgrade({ database, code, mode: 'online' })).rejects.toMatchObject({
        code: 'OUTAGELESS_ERR_STEP_FAILED',
        message: expect.stringContaining('renames a column the installed release reads'),
      });
      expect((await query(`select column_name from information_schema.columns where table_name = 'local_cat_item' and column_name in ('name', 'title')`)).map((r) => r.column_name)).toEqual(['name']);
      expect(await query(`select version::int from outageless_component where component = 'local_cat'`)).toEqual([{ version: V1 }]);
    } finally {
      await database.close();
    }
  });
});

// Keep `sql` referenced for readers: step sources above use Kysely's sql tag.
void sql;
