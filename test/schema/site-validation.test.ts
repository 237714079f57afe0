/**
 * The site-wide schema checks that run before the first write (issue 11, items 7 and 8):
 * lexical refusal of a default that is not one expression, the database's verdict on each
 * default inside a rolled-back transaction (nothing persists, not even a sequence step), and
 * the cross-component checks of foreign keys and table ownership.
 */
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOutagelessError } from '../../src/errors.ts';
import { defineSchema, type SchemaDefinition, type TableDefinition } from '../../src/schema/definition.ts';
import { expressionProblem, validateSchema } from '../../src/schema/ddl.ts';
import { checkDefaults, checkSiteSchema, type DeclaredSchema } from '../../src/schema/site-validation.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

function thrown(run: () => unknown): { code?: string; message: string; location?: Record<string, unknown> } {
  try {
    run();
  } catch (error) {
    if (isOutagelessError(error)) return { code: error.code, message: error.message, location: { ...error.location } };
    return { message: String(error) };
  }
  throw new Error('expected a throw');
}

async function rejected(run: () => Promise<unknown>): Promise<{ code?: string; message: string; location?: Record<string, unknown> }> {
  try {
    await run();
  } catch (error) {
    if (isOutagelessError(error)) return { code: error.code, message: error.message, location: { ...error.location } };
    return { message: String(error) };
  }
  throw new Error('expected a rejection');
}

const declared = (component: string, tables: Record<string, TableDefinition>, change: DeclaredSchema['change'] = 'install'): DeclaredSchema => ({
  component,
  file: `plugins/${component.replace('_', '/')}/db/schema.ts`,
  schema: defineSchema({ tables }),
  change,
});

const user: TableDefinition = { columns: { id: { type: 'bigint', autoIncrement: true }, name: { type: 'text' } }, primaryKey: ['id'] };

describe('expressionProblem: one expression, nothing that can end the clause', () => {
  it.each([
    ['now()'],
    ["'a;b -- c /* d'"],
    ["'it''s'"],
    ['"odd;name"'],
    ["E'\\'; drop'"],
    ["(1 + (2 * 3))"],
    ["'{}'::jsonb"],
  ])('accepts %s', (text) => {
    expect(expressionProblem(text)).toBeUndefined();
  });

  it.each([
    ['0); drop table person; create table zeta_x (a int', 'closes a parenthesis'],
    ['1; drop table person', 'contains ";"'],
    ['now() -- )', 'comment'],
    ['1 /* x */', 'comment'],
    ['(1', 'parenthesis open'],
    ["'unterminated", 'unterminated string'],
    ["E'\\'", 'unterminated string'],
    ['$$x$$', 'dollar quoting'],
    ['   ', 'empty'],
  ])('refuses %s', (text, problem) => {
    expect(expressionProblem(text)).toContain(problem);
  });
});

describe('validateSchema: defaults that cannot fit their column', () => {
  const withDefault = (type: string, value: unknown) =>
    thrown(() => validateSchema('db/schema.ts', 'local_x', { kind: 'schema', tables: { t: { columns: { c: { type, default: value } } } } }));

  it.each([
    ['integer', '1.5'],
    ['integer', 'abc'],
    ['integer', '3000000000'],
    ['bigint', '1e3'],
    ['boolean', 'maybe'],
    ['numeric(10,2)', 'ten'],
    ['varchar(3)', 'abcd'],
    ['json', '{nope'],
  ])('%s default %j is a coded error naming the column', (type, value) => {
    expect(withDefault(type, value)).toMatchObject({ code: 'OUTAGELESS_ERR_DEFAULT_INVALID', location: { file: 'db/schema.ts', component: 'local_x', field: 'tables.t.columns.c.default' } });
  });

  it('accepts literals of the right type', () => {
    for (const [type, value] of [['integer', '-12'], ['boolean', 'on'], ['numeric(10,2)', '1.50'], ['varchar(3)', 'abc'], ['json', '{"a":1}']] as const) {
      expect(() => validateSchema('db/schema.ts', 'local_x', { kind: 'schema', tables: { t: { columns: { c: { type, default: value } } } } })).not.toThrow();
    }
  });

  it('a default { sql } with a statement in it is refused before any database sees it', () => {
    expect(withDefault('integer', { sql: '0); drop table person; (' })).toMatchObject({ code: 'OUTAGELESS_ERR_DEFAULT_INVALID' });
  });

  it('a missing default export is its own code, not SCHEMA_INVALID', () => {
    expect(thrown(() => validateSchema('db/schema.ts', 'local_x', undefined)).code).toBe('OUTAGELESS_ERR_NO_DEFAULT_EXPORT');
  });
});

describe('checkSiteSchema: the whole site at once', () => {
  const core = declared('core', { user }, 'none');

  it('accepts a foreign key to another component\'s primary key', () => {
    const assign = declared('mod_assign', { assign: { columns: { id: { type: 'bigint' }, userid: { type: 'bigint' } }, foreignKeys: [{ columns: ['userid'], references: { table: 'user', columns: ['id'] } }] } });
    expect(() => checkSiteSchema([core, assign])).not.toThrow();
  });

  it('refuses a foreign key to a table no component declares', () => {
    const assign = declared('mod_assign', { assign: { columns: { ref: { type: 'bigint' } }, foreignKeys: [{ columns: ['ref'], references: { table: 'person', columns: ['id'] } }] } });
    expect(thrown(() => checkSiteSchema([core, assign]))).toMatchObject({
      code: 'OUTAGELESS_ERR_FOREIGN_KEY_TARGET',
      location: { component: 'mod_assign', field: 'tables.assign.foreignKeys[0].references.table' },
    });
  });

  it('refuses a foreign key to a missing column, and to columns that are not a unique key', () => {
    const missing = declared('mod_assign', { assign: { columns: { ref: { type: 'bigint' } }, foreignKeys: [{ columns: ['ref'], references: { table: 'user', columns: ['uid'] } }] } });
    expect(thrown(() => checkSiteSchema([core, missing])).location).toMatchObject({ field: 'tables.assign.foreignKeys[0].references.columns[0]' });
    const notUnique = declared('mod_assign', { assign: { columns: { ref: { type: 'text' } }, foreignKeys: [{ columns: ['ref'], references: { table: 'user', columns: ['name'] } }] } });
    expect(thrown(() => checkSiteSchema([core, notUnique])).message).toContain('not its primary key or a unique index');
  });

  it('names the component being installed when two declare the same table, whichever comes first', () => {
    const intruder = declared('local_a', { user });
    expect(thrown(() => checkSiteSchema([intruder, core]))).toMatchObject({ code: 'OUTAGELESS_ERR_TABLE_CONFLICT', location: { component: 'local_a', field: 'tables.user' } });
    expect(thrown(() => checkSiteSchema([core, intruder]))).toMatchObject({ code: 'OUTAGELESS_ERR_TABLE_CONFLICT', location: { component: 'local_a' } });
  });
});

describe('checkDefaults: the database decides, and keeps nothing', () => {
  let pglite: PGlite;
  let db: Kysely<any>;

  beforeAll(async () => {
    pglite = await PGlite.create();
    db = new Kysely<any>({ dialect: new PGliteDialect({ pglite }) });
    await sql`create sequence counter`.execute(db);
    await sql`create table person (id int)`.execute(db);
  });
  afterAll(async () => {
    await db.destroy();
  });

  const one = (column: TableDefinition['columns'][string]): DeclaredSchema[] => [declared('local_x', { local_x_item: { columns: { c: column } } })];
  const fresh = (schemas: DeclaredSchema[]): DeclaredSchema[] => schemas.map((item) => ({ ...item, schema: { ...item.schema } as SchemaDefinition }));

  it.each([
    [{ type: 'integer', default: { sql: 'no_such_function()' } }, 'no_such_function'],
    [{ type: 'integer', default: { sql: "'abc'" } }, 'abc'],
    [{ type: 'timestamp', default: 'not a time' }, 'not a time'],
    [{ type: 'integer', default: { sql: '(select 1)' } }, 'subquer'],
    [{ type: 'integer', default: { sql: "nextval('no_such_sequence')" } }, 'no_such_sequence'],
  ] as const)('refuses %j', async (column, reason) => {
    const error = await rejected(() => checkDefaults(db, fresh(one(column as never))));
    expect(error).toMatchObject({ code: 'OUTAGELESS_ERR_DEFAULT_INVALID', location: { component: 'local_x', field: 'tables.local_x_item.columns.c.default' } });
    expect(error.message).toContain(reason);
  });

  it('accepts good defaults without evaluating them or leaving anything behind', async () => {
    const before = await sql<{ last_value: string | null }>`select last_value::text from pg_sequences where sequencename = 'counter'`.execute(db);
    await checkDefaults(db, fresh(one({ type: 'bigint', default: { sql: "nextval('counter')" } })));
    await checkDefaults(db, fresh(one({ type: 'timestamp', default: { sql: 'now()' } })));
    const after = await sql<{ last_value: string | null }>`select last_value::text from pg_sequences where sequencename = 'counter'`.execute(db);
    expect(after.rows).toEqual(before.rows);
    const tables = await sql<{ n: number }>`select count(*)::int as n from pg_class where relname like 'outageless_default_check%'`.execute(db);
    expect(tables.rows[0]!.n).toBe(0);
    expect((await sql<{ n: number }>`select count(*)::int as n from person`.execute(db)).rows[0]!.n).toBe(0);
  });
});

describe.skipIf(!postgresAvailable)('checkDefaults on PostgreSQL, as a role without the TEMP privilege', () => {
  let scratch: ScratchDatabase;
  let db: Kysely<any>;
  const role = `outageless_notemp_${process.pid}`;

  beforeAll(async () => {
    scratch = await createScratchDatabase('site_validation');
    const admin = new pg.Client({ connectionString: scratch.url });
    await admin.connect();
    const name = new URL(scratch.url).pathname.slice(1);
    await admin.query(`drop role if exists ${role}`);
    await admin.query(`create role ${role} login`);
    await admin.query(`revoke temporary on database "${name}" from public`);
    await admin.end();
    const url = new URL(scratch.url);
    url.username = role;
    db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url.toString(), max: 1 }) }) });
  });
  afterAll(async () => {
    await db?.destroy();
    await scratch?.drop();
    const admin = new pg.Client({ connectionString: scratch.url.replace(/\/[^/]*$/, '/postgres') });
    await admin.connect();
    await admin.query(`drop role if exists ${role}`).finally(() => admin.end());
  });

  it('still parses every default (and refuses a bad one), skipping only the temporary column', async () => {
    const schema = (column: TableDefinition['columns'][string]) => [declared('local_x', { local_x_item: { columns: { c: column } } })];
    await expect(checkDefaults(db, schema({ type: 'timestamp', default: { sql: 'now()' } }))).resolves.toBeUndefined();
    const error = await rejected(() => checkDefaults(db, schema({ type: 'integer', default: { sql: 'no_such_function()' } })));
    expect(error.code).toBe('OUTAGELESS_ERR_DEFAULT_INVALID');
  });
});
