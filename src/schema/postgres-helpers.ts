import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import {
  addForeignKeyStatement,
  columnClauses,
  createIndexStatement,
  createTable,
  dataType,
  defaultExpression,
  postgresType,
  withRollback,
} from './ddl.ts';
import {
  foreignKeyName,
  indexName,
  primaryKeyName,
  type ColumnDefinition,
  type ForeignKeyDefinition,
  type IndexDefinition,
  type TableDefinition,
} from './definition.ts';
import { schemaErrors } from './errors.ts';
import type { SchemaHelpers } from './helpers.ts';
import { introspectTable } from './introspect.ts';

export interface SchemaHelperOptions {
  /** How long one DDL statement may wait for its lock. Default 5000. */
  readonly lockTimeoutMs?: number;
  /** Retries after a lock timeout (so `retries + 1` attempts). Default 5. */
  readonly retries?: number;
  /** Called after a lock timeout, before the backoff; `attempt` counts from 1. */
  readonly onRetry?: (what: string, attempt: number) => void;
}

type Db = Kysely<any>;

const LOCK_NOT_AVAILABLE = '55P03';

function isLockTimeout(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === 'object' && depth < 5; depth++) {
    if ((current as { code?: unknown }).code === LOCK_NOT_AVAILABLE) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** Exponential backoff with jitter, so retrying upgraders do not queue in lockstep. */
function backoffMs(attempt: number): number {
  return Math.min(5000, 50 * 2 ** (attempt - 1)) * (0.5 + Math.random());
}

async function setLockTimeout(db: Db, value: string, local: boolean): Promise<void> {
  await sql`select pg_catalog.set_config('lock_timeout', ${value}, ${local})`.execute(db);
}

async function readLockTimeout(db: Db): Promise<string> {
  const { rows } = await sql<{ value: string }>`select pg_catalog.current_setting('lock_timeout') as value`.execute(db);
  return rows[0]!.value;
}

async function exists(db: Db, query: RawBuilder<unknown>): Promise<boolean> {
  return (await query.execute(db)).rows.length > 0;
}

const inCurrentSchema = sql`n.nspname = pg_catalog.current_schema()`;

function tableExists(db: Db, table: string): Promise<boolean> {
  return exists(db, sql`select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${inCurrentSchema} and c.relname = ${table} and c.relkind in ('r', 'p')`);
}

function columnExists(db: Db, table: string, column: string): Promise<boolean> {
  return exists(db, sql`select 1 from pg_catalog.pg_attribute a
      join pg_catalog.pg_class c on c.oid = a.attrelid join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${inCurrentSchema} and c.relname = ${table} and c.relkind in ('r', 'p') and a.attname = ${column} and a.attnum > 0 and not a.attisdropped`);
}

async function indexState(db: Db, table: string, name: string): Promise<{ valid: boolean } | undefined> {
  const { rows } = await sql<{ valid: boolean }>`select x.indisvalid as valid from pg_catalog.pg_index x
      join pg_catalog.pg_class i on i.oid = x.indexrelid join pg_catalog.pg_class c on c.oid = x.indrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${inCurrentSchema} and c.relname = ${table} and i.relname = ${name}`.execute(db);
  return rows[0];
}

async function foreignKeyState(db: Db, table: string, name: string): Promise<{ validated: boolean } | undefined> {
  const { rows } = await sql<{ validated: boolean }>`select k.convalidated as validated from pg_catalog.pg_constraint k
      join pg_catalog.pg_class c on c.oid = k.conrelid join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${inCurrentSchema} and c.relname = ${table} and k.conname = ${name} and k.contype = 'f'`.execute(db);
  return rows[0];
}

/**
 * The default as `pg_get_expr()` would print it once set on a column of this type, read
 * from a throwaway temporary table, so comparing with the catalog needs no parsing.
 */
async function expectedDefault(db: Db, definition: ColumnDefinition): Promise<string | null> {
  const expression = definition.autoIncrement ? undefined : defaultExpression(definition.default);
  if (!expression) return null;
  return withRollback(db, async (trx) => {
    const probe = `outageless_probe_${randomBytes(4).toString('hex')}`;
    await sql`create temporary table ${sql.id(probe)} (value ${dataType(definition.type)} default ${expression})`.execute(trx);
    const { rows } = await sql<{ expression: string }>`select pg_catalog.pg_get_expr(d.adbin, d.adrelid) as expression
      from pg_catalog.pg_attrdef d join pg_catalog.pg_class c on c.oid = d.adrelid
      where c.relname = ${probe} and c.relnamespace = pg_catalog.pg_my_temp_schema()`.execute(trx);
    return rows[0]?.expression ?? null;
  });
}

/**
 * Idempotent DDL helpers for the PostgreSQL family: `ctx.schema` in upgrade steps.
 *
 * Each helper reads the catalog (in `current_schema()`) and does nothing when the schema
 * is already as asked. Each DDL statement runs under `lock_timeout`; when that hits
 * (SQLSTATE 55P03), the statement is undone and retried with backoff, so a step never
 * waits behind a long transaction while every query on the table queues behind the step.
 * Inside a transaction every attempt runs in a savepoint; outside one, the helpers pin a
 * connection and build and drop indexes `concurrently`, and add foreign keys `not valid`
 * then validate them, so writers are blocked only for a moment.
 *
 * @example
 * ```ts
 * const schema = createSchemaHelpers(trx, { lockTimeoutMs: 2000, onRetry: (what, n) => log.warn({ what, n }, 'lock timeout, retrying') })
 * await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true })
 * await schema.addIndex('assign', { columns: ['duedate'] })
 * ```
 */
export function createSchemaHelpers(db: Db, options: SchemaHelperOptions = {}): SchemaHelpers {
  const lockTimeoutMs = options.lockTimeoutMs ?? 5000;
  const retries = options.retries ?? 5;
  if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1) throw new RangeError(`lockTimeoutMs must be a positive integer, not ${lockTimeoutMs}`);
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`retries must be a non-negative integer, not ${retries}`);
  const timeout = `${lockTimeoutMs}ms`;
  const inTransaction = db.isTransaction;

  async function withRetries(what: string, attempt: () => Promise<void>): Promise<void> {
    for (let number = 1; ; number++) {
      try {
        await attempt();
        return;
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        if (number > retries) throw schemaErrors.lockTimeout(what, number, lockTimeoutMs, error);
        options.onRetry?.(what, number);
        await sleep(backoffMs(number));
      }
    }
  }

  /**
   * Runs DDL under the lock timeout, with retries. `atomic` work (several statements)
   * gets a transaction of its own when the caller has none; `concurrent` work must not.
   */
  async function guarded(what: string, work: (db: Db) => Promise<void>, mode: { atomic?: boolean } = {}): Promise<void> {
    if (inTransaction) {
      // A savepoint per attempt: a lock timeout aborts the statement, and without one it
      // would abort the step's whole transaction.
      const previous = await readLockTimeout(db);
      await withRetries(what, async () => {
        await sql`savepoint outageless_ddl`.execute(db);
        try {
          await setLockTimeout(db, timeout, true);
          await work(db);
          await setLockTimeout(db, previous, true);
        } catch (error) {
          await sql`rollback to savepoint outageless_ddl`.execute(db);
          await sql`release savepoint outageless_ddl`.execute(db);
          throw error;
        }
        await sql`release savepoint outageless_ddl`.execute(db);
      });
      return;
    }
    // A pool hands each query any connection: pin one so the setting applies, and put it
    // back before the connection returns to the pool.
    await db.connection().execute(async (connection) => {
      const previous = await readLockTimeout(connection);
      await setLockTimeout(connection, timeout, false);
      let failure: { error: unknown } | undefined;
      try {
        await withRetries(what, () => (mode.atomic ? connection.transaction().execute((trx) => work(trx)) : work(connection)));
      } catch (error) {
        failure = { error };
      }
      try {
        await setLockTimeout(connection, previous, false);
      } catch (error) {
        // The DDL's own error says more than a failed reset on a broken connection.
        if (!failure) throw error;
      }
      if (failure) throw failure.error;
    });
  }

  /** Renames that keep derived names (`<table>_pk`, `<table>_<cols>_ix`, …) derived. */
  async function renameDerived(
    trx: Db,
    live: NonNullable<Awaited<ReturnType<typeof introspectTable>>>,
    table: { from: string; to: string },
    column: (name: string) => string,
  ): Promise<void> {
    const renameConstraint = (from: string, to: string) =>
      from === to ? undefined : sql`alter table ${sql.table(table.to)} rename constraint ${sql.id(from)} to ${sql.id(to)}`.execute(trx);
    if (live.primaryKey && live.primaryKey.name === primaryKeyName(table.from)) {
      await renameConstraint(live.primaryKey.name, primaryKeyName(table.to));
    }
    for (const index of live.indexes) {
      if (index.name !== indexName(table.from, { columns: index.columns, unique: index.unique })) continue;
      const target = indexName(table.to, { columns: index.columns.map(column), unique: index.unique });
      if (target !== index.name) await sql`alter index ${sql.id(index.name)} rename to ${sql.id(target)}`.execute(trx);
    }
    for (const foreignKey of live.foreignKeys) {
      if (foreignKey.name !== foreignKeyName(table.from, { columns: foreignKey.columns, references: foreignKey.references })) continue;
      await renameConstraint(foreignKey.name, foreignKeyName(table.to, { columns: foreignKey.columns.map(column), references: foreignKey.references }));
    }
  }

  const helpers: SchemaHelpers = {
    hasTable: (table) => tableExists(db, table),
    hasColumn: (table, column) => columnExists(db, table, column),
    hasIndex: async (table, name) => (await indexState(db, table, name)) !== undefined,

    async createTable(table: string, definition: TableDefinition) {
      if (await tableExists(db, table)) return;
      await guarded(`create table ${table}`, (trx) => createTable(trx, table, definition), { atomic: true });
    },

    async dropTable(table) {
      if (!(await tableExists(db, table))) return;
      await guarded(`drop table ${table}`, (trx) => trx.schema.dropTable(table).ifExists().execute());
    },

    async renameTable(from, to) {
      if (!(await tableExists(db, from)) || (await tableExists(db, to))) return;
      await guarded(
        `rename table ${from} to ${to}`,
        async (trx) => {
          const live = await introspectTable(trx, from);
          await trx.schema.alterTable(from).renameTo(to).execute();
          if (live) await renameDerived(trx, live, { from, to }, (name) => name);
        },
        { atomic: true },
      );
    },

    async addColumn(table, column, definition) {
      if (await columnExists(db, table, column)) return;
      await guarded(`add column ${table}.${column}`, (trx) =>
        trx.schema.alterTable(table).addColumn(column, dataType(definition.type), columnClauses(definition)).execute(),
      );
    },

    async dropColumn(table, column) {
      if (!(await columnExists(db, table, column))) return;
      await guarded(`drop column ${table}.${column}`, (trx) => sql`alter table ${sql.table(table)} drop column if exists ${sql.id(column)}`.execute(trx).then(() => {}));
    },

    async renameColumn(table, from, to) {
      if (!(await columnExists(db, table, from)) || (await columnExists(db, table, to))) return;
      await guarded(
        `rename column ${table}.${from} to ${to}`,
        async (trx) => {
          const live = await introspectTable(trx, table);
          await trx.schema.alterTable(table).renameColumn(from, to).execute();
          if (live) {
            const touched = { ...live, indexes: live.indexes.filter((i) => i.columns.includes(from)), foreignKeys: live.foreignKeys.filter((f) => f.columns.includes(from)), primaryKey: null };
            await renameDerived(trx, touched, { from: table, to: table }, (name) => (name === from ? to : name));
          }
        },
        { atomic: true },
      );
    },

    async changeColumn(table, column, definition) {
      const what = `change column ${table}.${column}`;
      const current = (await introspectTable(db, table))?.columns.find((c) => c.name === column);
      if (!current) throw schemaErrors.objectMissing(what, `table ${table} has no column ${column}`);
      const type = postgresType(definition.type);
      const identity = definition.autoIncrement === true;
      const nullable = !identity && definition.nullable === true;
      const fallback = await expectedDefault(db, definition);
      const expression = identity ? undefined : defaultExpression(definition.default);

      const alter = (action: RawBuilder<unknown>) => sql`alter table ${sql.table(table)} alter column ${sql.id(column)} ${action}`;
      const statements: RawBuilder<unknown>[] = [];
      if (current.identity && !identity) statements.push(alter(sql`drop identity if exists`));
      if (current.type !== type) {
        // Drop the default first: the old one may not cast, and a re-set one prints the
        // way a fresh install prints it.
        if (current.default !== null) statements.push(alter(sql`drop default`));
        statements.push(alter(sql`type ${dataType(definition.type)} using ${sql.id(column)}::${dataType(definition.type)}`));
        if (expression) statements.push(alter(sql`set default ${expression}`));
      } else if (current.default !== fallback) {
        statements.push(alter(expression ? sql`set default ${expression}` : sql`drop default`));
      }
      if (current.nullable !== nullable) statements.push(alter(nullable ? sql`drop not null` : sql`set not null`));
      if (identity && !current.identity) {
        statements.push(alter(sql`add generated by default as identity`));
        // Existing rows keep their ids: start the sequence after the highest.
        statements.push(sql`select pg_catalog.setval(pg_catalog.pg_get_serial_sequence(${table}, ${column}),
          (select coalesce(max(${sql.id(column)}), 0) + 1 from ${sql.table(table)}), false)`);
      }
      if (statements.length === 0) return;
      await guarded(
        what,
        async (trx) => {
          for (const statement of statements) await statement.execute(trx);
        },
        { atomic: true },
      );
    },

    async addIndex(table, index: IndexDefinition) {
      const name = indexName(table, index);
      if ((await indexState(db, table, name))?.valid) return;
      const concurrently = !inTransaction;
      await guarded(`add index ${name} on ${table}`, async (trx) => {
        // A concurrent build that failed (a lock timeout, say) leaves an invalid index.
        if ((await indexState(trx, table, name))?.valid === false) {
          await sql`drop index ${sql.raw(concurrently ? 'concurrently ' : '')}if exists ${sql.id(name)}`.execute(trx);
        }
        await createIndexStatement(table, index, { concurrently }).execute(trx);
      });
    },

    async dropIndex(table, index) {
      const name = typeof index === 'string' ? index : indexName(table, index);
      if (!(await indexState(db, table, name))) return;
      await guarded(`drop index ${name} on ${table}`, (trx) =>
        sql`drop index ${sql.raw(inTransaction ? '' : 'concurrently ')}if exists ${sql.id(name)}`.execute(trx).then(() => {}),
      );
    },

    async addForeignKey(table, foreignKey: ForeignKeyDefinition) {
      const name = foreignKeyName(table, foreignKey);
      const state = await foreignKeyState(db, table, name);
      if (state?.validated) return;
      const what = `add foreign key ${name} on ${table}`;
      if (!state) {
        // In a transaction the lock is held to commit anyway, so one statement is as good.
        await guarded(what, (trx) => addForeignKeyStatement(table, foreignKey, { notValid: !inTransaction }).execute(trx).then(() => {}));
      }
      if (!inTransaction || state) {
        // VALIDATE takes a lock that lets writes through while it checks existing rows.
        await guarded(`validate foreign key ${name} on ${table}`, (trx) =>
          sql`alter table ${sql.table(table)} validate constraint ${sql.id(name)}`.execute(trx).then(() => {}),
        );
      }
    },

    async dropForeignKey(table, foreignKey) {
      const name = typeof foreignKey === 'string' ? foreignKey : foreignKeyName(table, foreignKey);
      if (!(await foreignKeyState(db, table, name))) return;
      await guarded(`drop foreign key ${name} on ${table}`, (trx) =>
        sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(name)}`.execute(trx).then(() => {}),
      );
    },
  };
  return helpers;
}
