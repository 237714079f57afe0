import { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isOutagelessError } from '../../src/errors.ts';
import { defineSchema, type SchemaDefinition } from '../../src/schema/definition.ts';
import { diffSchema, installSchema, introspectSchema, validateSchema, type SchemaDifference } from '../../src/schema/index.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

/** One database per file; every test gets a schema of its own as its search path. */
function useDatabase(kind: 'pglite' | 'postgres') {
  let shared: Kysely<any> | undefined;
  let scratch: ScratchDatabase | undefined;
  const opened: Kysely<any>[] = [];
  let counter = 0;
  beforeAll(async () => {
    if (kind === 'pglite') shared = new Kysely<any>({ dialect: new PGliteDialect({ pglite: new PGlite() }) });
    else scratch = await createScratchDatabase('schema_ddl');
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
  });
  afterAll(async () => {
    await shared?.destroy();
    await scratch?.drop();
  });
  return {
    async fresh(): Promise<Kysely<any>> {
      const schema = `t${++counter}`;
      if (shared) {
        await sql`create schema ${sql.id(schema)}`.execute(shared);
        await sql`set search_path to ${sql.id(schema)}`.execute(shared);
        return shared;
      }
      const db = new Kysely<any>({
        dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: scratch!.url, options: `-c search_path=${schema}`, max: 4 }) }),
      });
      opened.push(db);
      await sql`create schema ${sql.id(schema)}`.execute(db);
      return db;
    },
  };
}

const core = defineSchema({
  tables: {
    course: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        fullname: { type: 'varchar(254)', default: "O'Brien's course" },
        visible: { type: 'boolean', default: true },
        sortorder: { type: 'integer', default: 0 },
        summary: { type: 'text', nullable: true },
        settings: { type: 'json', default: '{}' },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['sortorder'] }, { columns: ['fullname', 'visible'], unique: true }],
    },
    users: {
      columns: { id: { type: 'integer', autoIncrement: true }, username: { type: 'varchar(100)' }, picture: { type: 'binary', nullable: true } },
      primaryKey: ['id'],
      indexes: [{ columns: ['username'], unique: true }],
    },
  },
});

const assign = defineSchema({
  tables: {
    // Declared before the table it references: install must order them.
    assign_submission: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        assignment: { type: 'bigint' },
        userid: { type: 'integer', nullable: true },
        grade: { type: 'numeric(10,5)', nullable: true, default: 0 },
      },
      primaryKey: ['id'],
      foreignKeys: [
        { columns: ['assignment'], references: { table: 'assign', columns: ['id'] }, onDelete: 'cascade' },
        { columns: ['userid'], references: { table: 'users', columns: ['id'] }, onDelete: 'set null' },
      ],
    },
    assign: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        course: { type: 'bigint' },
        name: { type: 'varchar(255)', default: '' },
        parent: { type: 'bigint', nullable: true },
        lastsubmission: { type: 'bigint', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['course'] }],
      foreignKeys: [
        { columns: ['course'], references: { table: 'course', columns: ['id'] } },
        { columns: ['parent'], references: { table: 'assign', columns: ['id'] } },
        // A cycle with assign_submission: added once both tables exist.
        { columns: ['lastsubmission'], references: { table: 'assign_submission', columns: ['id'] }, onDelete: 'set null' },
      ],
    },
  },
});

const declared = new Map<string, SchemaDefinition>([
  ['core', core],
  ['mod_assign', assign],
]);

async function install(db: Kysely<any>): Promise<void> {
  for (const schema of declared.values()) await installSchema(db, schema);
}

const backends = [
  { kind: 'pglite', skip: false },
  { kind: 'postgres', skip: !postgresAvailable },
] as const;

for (const backend of backends) {
  describe.skipIf(backend.skip)(`ddl and diff on ${backend.kind}`, () => {
    const database = useDatabase(backend.kind);

    it('installs every component and then finds no difference', async () => {
      const db = await database.fresh();
      await install(db);
      expect(await diffSchema(db, declared)).toEqual([]);

      const live = await introspectSchema(db);
      expect(Object.keys(live.tables)).toEqual(['assign', 'assign_submission', 'course', 'users']);
      const course = live.tables.course!;
      expect(course.primaryKey).toEqual({ name: 'course_pk', columns: ['id'] });
      expect(course.columns.map((column) => column.name)).toEqual(['created', 'fullname', 'id', 'settings', 'sortorder', 'summary', 'visible']);
      expect(course.columns.find((column) => column.name === 'created')).toEqual({
        name: 'created',
        type: 'timestamp with time zone',
        nullable: false,
        default: 'now()',
        identity: false,
      });
      expect(course.columns.find((column) => column.name === 'id')).toMatchObject({ type: 'bigint', identity: true, default: null, nullable: false });
      expect(course.columns.find((column) => column.name === 'settings')?.type).toBe('jsonb');
      expect(course.indexes).toEqual([
        { name: 'course_fullname_visible_uix', unique: true, columns: ['fullname', 'visible'] },
        { name: 'course_sortorder_ix', unique: false, columns: ['sortorder'] },
      ]);
      expect(live.tables.assign!.foreignKeys).toEqual([
        { name: 'assign_course_fk', columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'no action' },
        { name: 'assign_lastsubmission_fk', columns: ['lastsubmission'], references: { table: 'assign_submission', columns: ['id'] }, onDelete: 'set null' },
        { name: 'assign_parent_fk', columns: ['parent'], references: { table: 'assign', columns: ['id'] }, onDelete: 'no action' },
      ]);
      expect(live.tables.users!.columns.find((column) => column.name === 'picture')?.type).toBe('bytea');
    });

    it('renders literal defaults safely and applies them', async () => {
      const db = await database.fresh();
      await install(db);
      await sql`insert into course default values`.execute(db);
      const row = await db.selectFrom('course').selectAll().executeTakeFirstOrThrow();
      expect(row).toMatchObject({ fullname: "O'Brien's course", visible: true, sortorder: 0, summary: null, settings: {} });
      expect(row.created).toBeInstanceOf(Date);
      await db.insertInto('assign').values({ course: row.id }).execute();
      expect((await db.selectFrom('assign').select('name').executeTakeFirstOrThrow()).name).toBe('');
    });

    it('introspects equal schemas as deep-equal', async () => {
      const first = await database.fresh();
      await install(first);
      const a = await introspectSchema(first);
      const second = await database.fresh();
      await install(second);
      expect(await introspectSchema(second)).toEqual(a);
    });

    it('reports every kind of difference with a readable message', async () => {
      const db = await database.fresh();
      // The live side: what an imperfect upgrade left behind.
      await installSchema(
        db,
        defineSchema({
          tables: {
            owner: { columns: { id: { type: 'bigint' } }, primaryKey: ['id'] },
            thing: {
              columns: {
                id: { type: 'bigint' },
                name: { type: 'text', nullable: true },
                owner: { type: 'bigint' },
                legacy: { type: 'integer', default: 1 },
              },
              indexes: [{ columns: ['name'], name: 'thing_name_ix' }, { columns: ['legacy'] }],
              foreignKeys: [{ columns: ['owner'], references: { table: 'owner', columns: ['id'] }, name: 'thing_owner_fk' }],
            },
            stray: { columns: { id: { type: 'integer' } } },
            outageless_state: { columns: { id: { type: 'integer' } } },
          },
        }),
      );
      const expected = defineSchema({
        tables: {
          owner: { columns: { id: { type: 'bigint' } }, primaryKey: ['id'] },
          thing: {
            columns: {
              id: { type: 'bigint' },
              name: { type: 'varchar(255)', default: '' },
              owner: { type: 'bigint' },
              duedate: { type: 'timestamp', nullable: true },
            },
            primaryKey: ['id'],
            indexes: [{ columns: ['name'], name: 'thing_name_ix', unique: true }, { columns: ['owner'] }],
            foreignKeys: [
              { columns: ['owner'], references: { table: 'owner', columns: ['id'] }, name: 'thing_owner_fk', onDelete: 'cascade' },
              { columns: ['id'], references: { table: 'owner', columns: ['id'] } },
            ],
          },
          missing: { columns: { id: { type: 'integer' } } },
          outageless_declared: { columns: { id: { type: 'integer' } } },
        },
      });
      // The extra foreign key is one the live side has and the declaration lacks.
      await sql`alter table thing add constraint thing_extra_fk foreign key (owner) references owner (id)`.execute(db);

      const differences = await diffSchema(db, new Map([['mod_thing', expected]]), { exclude: (table) => table.startsWith('outageless_') });
      const byKind = (kind: SchemaDifference['kind']) => differences.filter((difference) => difference.kind === kind).map((difference) => difference.message);

      expect(new Set(differences.map((difference) => difference.kind))).toEqual(
        new Set([
          'missing-table',
          'extra-table',
          'missing-column',
          'extra-column',
          'column-mismatch',
          'primary-key-mismatch',
          'missing-index',
          'extra-index',
          'index-mismatch',
          'missing-foreign-key',
          'extra-foreign-key',
          'foreign-key-mismatch',
        ]),
      );
      expect(byKind('missing-table')).toEqual(['mod_thing: table missing: missing']);
      expect(byKind('extra-table')).toEqual(['table stray: not declared by any component']);
      expect(differences.find((difference) => difference.kind === 'extra-table')?.component).toBeUndefined();
      expect(byKind('missing-column')).toEqual(['mod_thing: table thing: column duedate missing (expected timestamp with time zone NULL)']);
      expect(byKind('extra-column')).toEqual(['mod_thing: table thing: column legacy is not declared (integer NOT NULL DEFAULT 1)']);
      expect(byKind('column-mismatch')).toEqual([
        "mod_thing: table thing: column name type is text, expected character varying(255); is NULL, expected NOT NULL; default is none, expected ''::character varying",
      ]);
      expect(byKind('primary-key-mismatch')).toEqual(['mod_thing: table thing: primary key is none, expected thing_pk (id)']);
      expect(byKind('missing-index')).toEqual(['mod_thing: table thing: index thing_owner_ix missing (expected (owner))']);
      expect(byKind('extra-index')).toEqual(['mod_thing: table thing: index thing_legacy_ix is not declared ((legacy))']);
      expect(byKind('index-mismatch')).toEqual(['mod_thing: table thing: index thing_name_ix is (name), expected unique (name)']);
      expect(byKind('missing-foreign-key')).toEqual([
        'mod_thing: table thing: foreign key thing_id_fk missing (expected (id) references owner (id) on delete no action)',
      ]);
      expect(byKind('extra-foreign-key')).toEqual([
        'mod_thing: table thing: foreign key thing_extra_fk is not declared ((owner) references owner (id) on delete no action)',
      ]);
      expect(byKind('foreign-key-mismatch')).toEqual([
        'mod_thing: table thing: foreign key thing_owner_fk is (owner) references owner (id) on delete no action, expected (owner) references owner (id) on delete cascade',
      ]);
      const mismatch = differences.find((difference) => difference.kind === 'column-mismatch');
      expect(mismatch).toMatchObject({ component: 'mod_thing', table: 'thing', column: 'name', actual: { type: 'text' }, expected: { type: 'character varying(255)' } });
    });

    it('leaves no scratch schema behind, also inside a caller transaction', async () => {
      const db = await database.fresh();
      await install(db);
      const leftovers = () =>
        sql<{ n: number }>`select count(*)::int as n from pg_namespace where nspname like 'outageless_expected_%'`.execute(db).then((r) => r.rows[0]!.n);
      await diffSchema(db, declared);
      expect(await leftovers()).toBe(0);

      await db.transaction().execute(async (trx) => {
        await sql`create table made_in_transaction (id integer)`.execute(trx);
        const differences = await diffSchema(trx, declared);
        expect(differences.map((difference) => difference.message)).toEqual(['table made_in_transaction: not declared by any component']);
        // The transaction is still usable and its search path is back.
        const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(trx);
        expect(rows[0]!.schema).toMatch(/^t\d+$/);
      });
      expect(await leftovers()).toBe(0);
      const live = await introspectSchema(db);
      expect(live.tables.made_in_transaction).toBeDefined();
    });

    it('reports a table declared by two components as invalid', async () => {
      const db = await database.fresh();
      const twice = new Map([
        ['core', core],
        ['local_copy', defineSchema({ tables: { course: core.tables.course! } })],
      ]);
      await expect(diffSchema(db, twice)).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_SCHEMA_INVALID', message: expect.stringContaining('declared by both core and local_copy') });
    });
  });
}

describe('validateSchema', () => {
  const file = '/site/plugins/mod/assign/db/schema.ts';
  const base = { id: { type: 'bigint', autoIncrement: true }, name: { type: 'varchar(255)' } };

  function invalid(tables: unknown) {
    try {
      validateSchema(file, 'mod_assign', { kind: 'schema', tables });
    } catch (error) {
      if (isOutagelessError(error, 'OUTAGELESS_ERR_SCHEMA_INVALID')) return error;
      throw error;
    }
    throw new Error('expected the schema to be rejected');
  }

  it('accepts a valid definition and returns it', () => {
    expect(validateSchema(file, 'core', core)).toBe(core);
    expect(validateSchema(file, 'mod_assign', assign)).toBe(assign);
  });

  it.each([
    ['an unknown type', { assign: { columns: { ...base, due: { type: 'datetime' } } } }, 'table assign: column due: type: unknown type "datetime"', 'tables.assign.columns.due.type'],
    ['autoIncrement on text', { assign: { columns: { ...base, code: { type: 'text', autoIncrement: true } } } }, 'table assign: column code: autoIncrement: autoIncrement needs type integer or bigint, not text', 'tables.assign.columns.code.autoIncrement'],
    ['a primary key on a missing column', { assign: { columns: base, primaryKey: ['uid'] } }, 'table assign: primaryKey[0]: column uid is not a column of table assign', 'tables.assign.primaryKey[0]'],
    ['an index on a missing column', { assign: { columns: base, indexes: [{ columns: ['name', 'course'] }] } }, 'table assign: indexes[0].columns[1]: column course is not a column of table assign', 'tables.assign.indexes[0].columns[1]'],
    [
      'a foreign key on a missing column',
      { assign: { columns: base, foreignKeys: [{ columns: ['course'], references: { table: 'course', columns: ['id'] } }] } },
      'table assign: foreignKeys[0].columns[0]: column course is not a column of table assign',
      'tables.assign.foreignKeys[0].columns[0]',
    ],
    [
      'a foreign key to a missing column of a sibling table',
      { assign: { columns: base }, grades: { columns: { assignment: { type: 'bigint' } }, foreignKeys: [{ columns: ['assignment'], references: { table: 'assign', columns: ['uid'] } }] } },
      'table grades: foreignKeys[0].references.columns[0]: column uid is not a column of the referenced table assign',
      'tables.grades.foreignKeys[0].references.columns[0]',
    ],
    ['a misspelt property', { assign: { columns: { ...base, due: { type: 'timestamp', nulable: true } } } }, 'table assign: column due', 'tables.assign.columns.due'],
    ['a boolean default on an integer', { assign: { columns: { ...base, n: { type: 'integer', default: true } } } }, 'table assign: column n: default: a boolean default does not fit type integer', 'tables.assign.columns.n.default'],
    ['a nullable primary key column', { assign: { columns: { id: { type: 'bigint', nullable: true } }, primaryKey: ['id'] } }, 'column id is in the primary key, so it cannot be nullable', 'tables.assign.columns.id.nullable'],
    ['an upper-case table name', { Assign: { columns: base } }, 'must be a lower-case SQL identifier', 'tables.Assign'],
  ])('rejects %s, naming the file, table and column', (_, tables, message, field) => {
    const error = invalid(tables);
    expect(error.message).toContain(message);
    expect(error.message.startsWith('mod_assign: ')).toBe(true);
    expect(error.location).toMatchObject({ file, component: 'mod_assign', field });
    expect(error.describe()).toContain(file);
  });

  it('rejects a default export that is not a schema', () => {
    expect(() => validateSchema(file, 'mod_assign', undefined)).toThrow(/no default export/);
    expect(() => validateSchema(file, 'mod_assign', { tables: {} })).toThrow(/defineSchema/);
  });
});
