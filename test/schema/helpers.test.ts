import { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect, sql, type KyselyPlugin, type RootOperationNode } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { defineSchema, type SchemaDefinition, type TableDefinition } from '../../src/schema/definition.ts';
import { createSchemaHelpers, diffSchema, installSchema, introspectSchema, introspectTable } from '../../src/schema/index.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

/** One database per file; every test gets a schema of its own as its search path. */
function useDatabase(kind: 'pglite' | 'postgres') {
  let shared: Kysely<any> | undefined;
  let scratch: ScratchDatabase | undefined;
  const opened: Kysely<any>[] = [];
  let counter = 0;
  beforeAll(async () => {
    if (kind === 'pglite') shared = new Kysely<any>({ dialect: new PGliteDialect({ pglite: new PGlite() }) });
    else scratch = await createScratchDatabase('schema_helpers');
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
  });
  afterAll(async () => {
    await shared?.destroy();
    await scratch?.drop();
  });
  return {
    get url(): string {
      return scratch!.url;
    },
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

/** Records the DDL a Kysely instance sends (temporary probe tables aside). */
function recordDdl(db: Kysely<any>): { db: Kysely<any>; statements: string[] } {
  const statements: string[] = [];
  const plugin: KyselyPlugin = {
    transformQuery({ node }) {
      const text = describeNode(node);
      if (/^\s*(create|alter|drop)\b/i.test(text) && !/temporary/i.test(text)) statements.push(text.trim());
      return node;
    },
    transformResult: async ({ result }) => result,
  };
  return { db: db.withPlugin(plugin), statements };
}

function describeNode(node: RootOperationNode): string {
  if (node.kind === 'RawNode') return node.sqlFragments.join('?');
  return node.kind.replace(/Node$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

const finalAssign: TableDefinition = {
  columns: {
    id: { type: 'bigint', autoIncrement: true },
    course: { type: 'bigint' },
    name: { type: 'varchar(255)', default: '' },
    duedate: { type: 'timestamp', nullable: true },
    grade: { type: 'numeric(10,5)', default: 0 },
  },
  primaryKey: ['id'],
  indexes: [{ columns: ['course'] }, { columns: ['duedate'] }, { columns: ['course', 'name'], unique: true }],
  foreignKeys: [{ columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' }],
};

const course: TableDefinition = { columns: { id: { type: 'bigint', autoIncrement: true } }, primaryKey: ['id'] };

const finalSchema = defineSchema({ tables: { course, assign: finalAssign } });
const declared = new Map<string, SchemaDefinition>([['mod_assign', finalSchema]]);

const backends = [
  { kind: 'pglite', skip: false },
  { kind: 'postgres', skip: !postgresAvailable },
] as const;

for (const backend of backends) {
  describe.skipIf(backend.skip)(`schema helpers on ${backend.kind}`, () => {
    const database = useDatabase(backend.kind);

    /** Release 1 through the helpers, then release 2's changes, as upgrade steps would. */
    async function upgradeThroughHelpers(db: Kysely<any>): Promise<void> {
      const schema = createSchemaHelpers(db);
      await schema.createTable('course', course);
      await schema.createTable('assign', {
        columns: { id: { type: 'bigint', autoIncrement: true }, course: { type: 'bigint' }, name: { type: 'varchar(255)', default: '' } },
        primaryKey: ['id'],
        indexes: [{ columns: ['course'] }],
      });
      await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true });
      await schema.addColumn('assign', 'grade', { type: 'numeric(10,5)', default: 0 });
      await schema.addIndex('assign', { columns: ['duedate'] });
      await schema.addIndex('assign', { columns: ['course', 'name'], unique: true });
      await schema.addForeignKey('assign', finalAssign.foreignKeys![0]!);
    }

    it.each([
      ['outside a transaction', false],
      ['inside a transaction', true],
    ])('builds through helpers the same schema install builds (%s)', async (_, inTransaction) => {
      const upgraded = await database.fresh();
      if (inTransaction) await upgraded.transaction().execute((trx) => upgradeThroughHelpers(trx));
      else await upgradeThroughHelpers(upgraded);
      const afterUpgrade = await introspectSchema(upgraded);
      expect(await diffSchema(upgraded, declared)).toEqual([]);

      const installed = await database.fresh();
      await installSchema(installed, finalSchema);
      expect(await introspectSchema(installed)).toEqual(afterUpgrade);
    });

    it('is idempotent: every helper can run twice', async () => {
      const db = await database.fresh();
      const twice = async (run: () => Promise<void>) => {
        await run();
        await run();
      };
      await upgradeThroughHelpers(db);
      const recorded = recordDdl(db);
      await upgradeThroughHelpers(recorded.db);
      expect(recorded.statements).toEqual([]);

      const schema = createSchemaHelpers(db);
      await twice(() => schema.addColumn('assign', 'extra', { type: 'integer', nullable: true }));
      await twice(() => schema.addIndex('assign', { columns: ['extra'] }));
      expect(await schema.hasIndex('assign', 'assign_extra_ix')).toBe(true);
      await twice(() => schema.dropIndex('assign', { columns: ['extra'] }));
      expect(await schema.hasIndex('assign', 'assign_extra_ix')).toBe(false);
      await twice(() => schema.changeColumn('assign', 'extra', { type: 'bigint', default: 7 }));
      await twice(() => schema.renameColumn('assign', 'extra', 'extra2'));
      expect(await schema.hasColumn('assign', 'extra')).toBe(false);
      expect(await schema.hasColumn('assign', 'extra2')).toBe(true);
      await twice(() => schema.dropColumn('assign', 'extra2'));
      expect(await schema.hasColumn('assign', 'extra2')).toBe(false);
      await twice(() => schema.dropForeignKey('assign', finalAssign.foreignKeys![0]!));
      await twice(() => schema.addForeignKey('assign', finalAssign.foreignKeys![0]!));
      await twice(() => schema.createTable('scratch', { columns: { id: { type: 'integer' } } }));
      await twice(() => schema.renameTable('scratch', 'scratch2'));
      expect(await schema.hasTable('scratch')).toBe(false);
      expect(await schema.hasTable('scratch2')).toBe(true);
      await twice(() => schema.dropTable('scratch2'));
      expect(await schema.hasTable('scratch2')).toBe(false);
      expect(await diffSchema(db, declared)).toEqual([]);
    });

    it('changeColumn brings type, nullability, default and identity to the definition', async () => {
      const db = await database.fresh();
      const schema = createSchemaHelpers(db);
      await schema.createTable('course', course);
      await schema.createTable('assign', {
        columns: {
          id: { type: 'bigint' },
          course: { type: 'integer', nullable: true, default: 3 },
          name: { type: 'text', nullable: true },
          duedate: { type: 'timestamp', nullable: true },
          grade: { type: 'numeric(10,5)', default: 0 },
        },
        indexes: [{ columns: ['course'] }, { columns: ['duedate'] }, { columns: ['course', 'name'], unique: true }],
        foreignKeys: [],
      });
      await sql`insert into assign (id, course, name) values (5, 1, 'five')`.execute(db);
      await sql`insert into course (id) values (1)`.execute(db);

      await schema.changeColumn('assign', 'id', finalAssign.columns.id!);
      await schema.changeColumn('assign', 'course', finalAssign.columns.course!);
      await schema.changeColumn('assign', 'name', finalAssign.columns.name!);
      await sql`alter table assign add constraint assign_pk primary key (id)`.execute(db);
      await schema.addForeignKey('assign', finalAssign.foreignKeys![0]!);
      expect(await diffSchema(db, declared)).toEqual([]);

      // Existing rows keep their ids; new ones continue after them.
      const { rows } = await sql<{ id: string }>`insert into assign (course) values (1) returning id`.execute(db);
      expect(Number(rows[0]!.id)).toBe(6);

      const recorded = recordDdl(db);
      const again = createSchemaHelpers(recorded.db);
      for (const [column, definition] of Object.entries(finalAssign.columns)) await again.changeColumn('assign', column, definition);
      expect(recorded.statements).toEqual([]);

      await expect(schema.changeColumn('assign', 'nope', { type: 'text' })).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_SCHEMA_OBJECT_MISSING' });
    });

    it('renames keep derived constraint and index names derived', async () => {
      const db = await database.fresh();
      const schema = createSchemaHelpers(db);
      await installSchema(
        db,
        defineSchema({
          tables: {
            course,
            assignment: {
              ...finalAssign,
              columns: { ...finalAssign.columns, courseid: finalAssign.columns.course! },
              indexes: [{ columns: ['courseid'] }, { columns: ['duedate'] }, { columns: ['courseid', 'name'], unique: true }],
              foreignKeys: [{ ...finalAssign.foreignKeys![0]!, columns: ['courseid'] }],
            },
          },
        }),
      );
      // Drop "course" from the column list so the rename re-adds it at the end.
      await db.schema.alterTable('assignment').dropColumn('course').execute();
      await schema.renameTable('assignment', 'assign');
      await schema.renameColumn('assign', 'courseid', 'course');
      expect(await diffSchema(db, declared)).toEqual([]);
      const assign = await introspectTable(db, 'assign');
      expect(assign?.primaryKey?.name).toBe('assign_pk');
    });
  });
}

describe.skipIf(!postgresAvailable)('lock timeouts on postgres', () => {
  const database = useDatabase('postgres');

  /** Holds ACCESS EXCLUSIVE on `table` from another connection until `release()` is called. */
  async function holdLock(db: Kysely<any>, table: string): Promise<{ release: () => Promise<void> }> {
    const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query('begin');
    await client.query(`lock table "${rows[0]!.schema}"."${table}" in access exclusive mode`);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        await client.query('commit');
        await client.end();
      },
    };
  }

  it('outside a transaction, retries with backoff until a briefly held lock is gone', async () => {
    const db = await database.fresh();
    await installSchema(db, finalSchema);
    const lock = await holdLock(db, 'assign');
    const timer = setTimeout(() => void lock.release(), 300);
    const onRetry = vi.fn();
    try {
      await createSchemaHelpers(db, { lockTimeoutMs: 100, lockWaitMs: 10_000, onRetry }).addColumn('assign', 'late', { type: 'integer', nullable: true });
    } finally {
      clearTimeout(timer);
      await lock.release();
    }
    expect(onRetry).toHaveBeenCalled();
    expect(onRetry.mock.calls[0]!.slice(0, 2)).toEqual(['add column assign.late', 1]);
    expect(await createSchemaHelpers(db).hasColumn('assign', 'late')).toBe(true);
    // The pinned connection went back to the pool with the server's default.
    const settings = await Promise.all(
      [1, 2, 3, 4].map(() => db.connection().execute((c) => sql<{ value: string }>`select current_setting('lock_timeout') as value`.execute(c))),
    );
    expect(settings.map((s) => s.rows[0]!.value)).toEqual(['0', '0', '0', '0']);
  });

  it('inside a transaction, never retries on a savepoint: the lock timeout fails the transaction, to be retried whole', async () => {
    const db = await database.fresh();
    await installSchema(db, finalSchema);
    const lock = await holdLock(db, 'assign');
    const onRetry = vi.fn();
    try {
      await expect(
        db.transaction().execute(async (trx) => {
          await createSchemaHelpers(trx, { lockTimeoutMs: 100, onRetry }).addColumn('assign', 'late', { type: 'integer', nullable: true });
        }),
      ).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_LOCK_TIMEOUT', message: expect.stringContaining('add column assign.late: could not get its lock within 100ms') });
    } finally {
      await lock.release();
    }
    expect(onRetry).not.toHaveBeenCalled();
    expect(await createSchemaHelpers(db).hasColumn('assign', 'late')).toBe(false);
  });

  it('fails once the lock-wait budget is spent, naming the blocking session, and leaves no invalid index', async () => {
    const db = await database.fresh();
    await installSchema(db, finalSchema);
    const lock = await holdLock(db, 'assign');
    const onRetry = vi.fn();
    const helpers = (target: Kysely<any>) => createSchemaHelpers(target, { lockTimeoutMs: 50, lockWaitMs: 400, onRetry });
    try {
      await expect(helpers(db).addColumn('assign', 'late', { type: 'integer', nullable: true })).rejects.toMatchObject({
        code: 'OUTAGELESS_ERR_LOCK_WAIT_EXCEEDED',
        exitCode: 7,
        message: expect.stringMatching(/add column assign\.late: gave up after \d+ attempts of 50ms .*Blocking the lock on assign: pid \d+ .*AccessExclusiveLock.*lock table/),
      });
      expect(onRetry.mock.calls.length).toBeGreaterThan(0);
      // A concurrent build waits without blocking traffic, so it may use the whole budget, once.
      await expect(helpers(db).addIndex('assign', { columns: ['name'] })).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_LOCK_WAIT_EXCEEDED' });
    } finally {
      await lock.release();
    }
    const { rows } = await sql<{ count: string }>`select count(*)::text as count from pg_index x join pg_class i on i.oid = x.indexrelid where i.relname = 'assign_name_ix'`.execute(db);
    expect(rows[0]!.count).toBe('0');
    await helpers(db).addIndex('assign', { columns: ['name'] });
    const valid = await sql<{ valid: boolean }>`select indisvalid as valid from pg_index where indexrelid = 'assign_name_ix'::regclass`.execute(db);
    expect(valid.rows[0]!.valid).toBe(true);
  });
});
