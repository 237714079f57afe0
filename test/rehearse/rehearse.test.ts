/**
 * `outageless rehearse` on PostgreSQL: release 3 of the example site is installed with the
 * CLI, then a new mod_assign release is deployed whose step is declared `none`. The rehearsal
 * must catch a raw rename through ctx.db, a step that disagrees with db/schema.ts, and a table
 * rewrite, agree with an honest additive step, leave the live schema as it was, and leave no
 * scratch schema behind.
 */
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { introspectSchema } from '../../src/schema/introspect.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, REPO, type SiteDir } from '../support/sites.ts';

const NEXT = 2026040100;

/** mod_assign's release 3 schema with `change` applied to the assign table's columns. */
async function deployAssignRelease(site: SiteDir, step: { id: string; body: string; transaction?: boolean }, columns: (text: string) => string): Promise<void> {
  await site.deploy(3);
  await site.edit('plugins/mod/assign/version.ts', (text) => text.replace(/version: \d{10}/, `version: ${NEXT}`));
  await site.edit('plugins/mod/assign/db/schema.ts', columns);
  await site.edit('plugins/mod/assign/db/upgrade.ts', (text) =>
    text
      .replace("import { defineUpgrade } from 'outageless';", "import { defineUpgrade } from 'outageless';\nimport { sql } from 'kysely';\nvoid sql;")
      .replace(
        '  ],\n  // Speaks',
        `    {
      version: ${NEXT},
      id: '${step.id}',
      outage: 'none',${step.transaction === false ? '\n      transaction: false,' : ''}
      async run({ db, schema }) {
        void db; void schema;
        ${step.body}
      },
    },
  ],
  // Speaks`,
      ),
  );
}

describe.skipIf(!postgresAvailable)('outageless rehearse (PostgreSQL)', () => {
  let site: SiteDir;
  let database: ScratchDatabase;
  let db: Kysely<any>;
  const rehearse = (...args: string[]) => cli(['rehearse', '--root', site.root, '--database', database.url, '--rows', '200', ...args]);

  /** The live schema and installed versions, to prove a rehearsal changes neither. */
  const liveState = async () => ({
    schema: await introspectSchema(db),
    versions: (await sql<{ component: string; version: number }>`select component, version from outageless_component order by component`.execute(db)).rows,
  });
  const scratchSchemas = async () =>
    (await sql<{ nspname: string }>`select nspname from pg_catalog.pg_namespace where nspname like 'outageless\\_%'`.execute(db)).rows.map((row) => row.nspname);

  beforeAll(async () => {
    site = await createSiteDir(3);
    // Steps import kysely, as they would from the host application's dependencies.
    await symlink(join(REPO, 'node_modules', 'kysely'), join(site.root, 'node_modules', 'kysely'), 'dir');
    database = await createScratchDatabase('rehearse');
    const install = await cli(['upgrade', '--non-interactive', '--root', site.root, '--database', database.url]);
    expect(install.code, install.stderr).toBe(0);
    db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 2 }) }) });
  });

  afterAll(async () => {
    await db?.destroy();
    await site?.cleanup();
    await database?.drop();
  });

  it('finds a raw ALTER TABLE … RENAME through ctx.db in a none step and exits 2', async () => {
    const before = await liveState();
    await deployAssignRelease(site, { id: 'assign_rename_name', body: 'await sql`alter table assign rename column name to title`.execute(db);' }, (text) =>
      text.replace("name: { type: 'varchar(255)' },", "title: { type: 'varchar(255)' },"),
    );
    const result = await rehearse();
    expect(result.code, result.stderr + result.stdout).toBe(2);
    expect(result.stdout).toContain('assign_rename_name');
    expect(result.stdout).toContain('declared none, observed component');
    expect(result.stdout).toContain('column assign.name was renamed to title');
    expect(result.stdout).toContain('AccessExclusiveLock on assign');
    // The schema itself is what db/schema.ts says: only the class is wrong.
    expect(result.stdout).toContain('Schema after the steps: matches every db/schema.ts.');
    expect(await liveState()).toEqual(before);
    expect(await scratchSchemas()).toEqual([]);
  });

  it('reports a column named colour in the step and color in db/schema.ts with exit 2', async () => {
    const before = await liveState();
    await deployAssignRelease(site, { id: 'assign_add_colour', body: "await schema.addColumn('assign', 'colour', { type: 'varchar(20)', nullable: true });" }, (text) =>
      text.replace("duedate: { type: 'timestamp', nullable: true },", "duedate: { type: 'timestamp', nullable: true },\n        color: { type: 'varchar(20)', nullable: true },"),
    );
    const result = await rehearse('--json');
    expect(result.code, result.stderr).toBe(2);
    const report = JSON.parse(result.stdout);
    expect(report.steps).toMatchObject([{ component: 'mod_assign', id: 'assign_add_colour', declared: 'none', observed: 'none', status: 'ran' }]);
    expect(report.steps[0].warning).toBeUndefined();
    expect(report.schema.matches).toBe(false);
    expect(report.schema.differences.map((d: { message: string }) => d.message)).toEqual([
      expect.stringMatching(/mod_assign: table assign: column color missing/),
      expect.stringMatching(/mod_assign: table assign: column colour is not declared/),
    ]);
    expect(report.warnings.join('\n')).toContain('column color missing');
    expect(await liveState()).toEqual(before);
    expect(await scratchSchemas()).toEqual([]);
  });

  it('sees a table rewrite (a volatile default) through the relfilenode and exits 2', async () => {
    const before = await liveState();
    await deployAssignRelease(
      site,
      { id: 'assign_add_token', body: 'await sql`alter table assign add column token text default md5(random()::text)`.execute(db);' },
      (text) => text.replace("duedate: { type: 'timestamp', nullable: true },", "duedate: { type: 'timestamp', nullable: true },\n        token: { type: 'text', nullable: true, default: { sql: 'md5(random()::text)' } },"),
    );
    const result = await rehearse('--json');
    expect(result.code, result.stderr).toBe(2);
    const report = JSON.parse(result.stdout);
    const [step] = report.steps;
    expect(step).toMatchObject({ id: 'assign_add_token', declared: 'none', observed: 'component' });
    expect(step.rewrites).toMatchObject([{ table: 'assign' }]);
    expect(step.rewrites[0].before).not.toBe(step.rewrites[0].after);
    expect(step.reasons.map((r: { kind: string }) => r.kind)).toContain('rewrite');
    expect(report.schema.matches).toBe(true);
    expect(await liveState()).toEqual(before);
    expect(await scratchSchemas()).toEqual([]);
  });

  it('agrees with an honest additive none step that matches db/schema.ts (exit 0), outside a transaction too', async () => {
    const before = await liveState();
    await deployAssignRelease(
      site,
      {
        id: 'assign_add_color',
        transaction: false,
        body: "await schema.addColumn('assign', 'color', { type: 'varchar(20)', nullable: true });\n        await schema.addIndex('assign', { columns: ['color'] });",
      },
      (text) =>
        text
          .replace("duedate: { type: 'timestamp', nullable: true },", "duedate: { type: 'timestamp', nullable: true },\n        color: { type: 'varchar(20)', nullable: true },")
          .replace("indexes: [{ columns: ['course'] }, { columns: ['duedate'] }],", "indexes: [{ columns: ['course'] }, { columns: ['duedate'] }, { columns: ['color'] }],"),
    );
    const result = await rehearse('--json');
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.steps).toMatchObject([{ id: 'assign_add_color', declared: 'none', observed: 'none', status: 'ran', reasons: [] }]);
    expect(report.steps[0].statements.some((s: { sql: string }) => /create index/i.test(s.sql))).toBe(true);
    expect(report.tables.find((t: { name: string }) => t.name === 'assign')).toMatchObject({ scratchRows: 200 });
    expect(report.schema).toMatchObject({ compared: true, matches: true, differences: [] });
    expect(report.failure).toBeNull();
    expect(await liveState()).toEqual(before);
    expect(await scratchSchemas()).toEqual([]);

    // And in words, without --json.
    const text = await rehearse();
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('Rehearsal agrees');
  });

  it('refuses a step that names the live schema before the statement is sent (exit 1), and the live rows stay as they were', async () => {
    await sql`insert into course (fullname, shortname) values ('Live course', 'live')`.execute(db);
    const before = await liveState();
    const courses = async () => (await sql<{ fullname: string }>`select fullname from course order by id`.execute(db)).rows;
    const rowsBefore = await courses();
    await deployAssignRelease(site, { id: 'assign_touch_live', transaction: false, body: "await sql`update public.course set fullname = 'changed by a rehearsal'`.execute(db);" }, (text) => text);
    const result = await rehearse();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('OUTAGELESS_ERR_REHEARSE_LIVE_TOUCHED');
    expect(result.stderr).toContain('public.course');
    expect(result.stderr).toContain('refused before it reached the database');
    expect(await courses()).toEqual(rowsBefore);
    expect(await liveState()).toEqual(before);
    expect(await scratchSchemas()).toEqual([]);
  });

  it('refuses the embedded database with a coded error', async () => {
    const result = await cli(['rehearse', '--root', site.root, '--database', 'pglite://memory']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('OUTAGELESS_ERR_REHEARSE_NEEDS_POSTGRES');
  });
});
