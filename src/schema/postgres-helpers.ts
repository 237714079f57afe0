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
  type ColumnDefault,
  type ColumnDefinition,
  type ForeignKeyDefinition,
  type IndexDefinition,
  type TableDefinition,
} from './definition.ts';
import { schemaErrors } from './errors.ts';
import type { BackfillOptions, SchemaHelpers } from './helpers.ts';
import { introspectTable } from './introspect.ts';
import {
  backoffMs,
  createLockWaitBudget,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_LOCK_WAIT_MS,
  findBlockers,
  isLockTimeout,
  readLockTimeout,
  setLockTimeout,
  type LockWaitBudget,
} from './lock-safety.ts';
import { assessHelperCall, type HelperCall, type SchemaShape } from './online-safety.ts';

export interface SchemaHelperOptions {
  /** How long one attempt of a DDL statement may wait for its lock. Default 200. */
  readonly lockTimeoutMs?: number;
  /** Total lock wait over all attempts (ignored when `budget` is given). Default 60000. */
  readonly lockWaitMs?: number;
  /** A budget shared with the caller, e.g. the runner's for the whole step. */
  readonly budget?: LockWaitBudget;
  /** Called after a lock timeout, before the backoff; `attempt` counts from 1. */
  readonly onRetry?: (what: string, attempt: number, delayMs: number) => void;
  /** Called when a helper inside a transaction hits its lock timeout (the caller retries the transaction). */
  readonly onLockTimeout?: (table: string | undefined) => void;
  /**
   * Set when the step runs while the site serves as class `none`: helpers that would break
   * the installed release (judged against `oldSchema`, the schema before the upgrade) refuse.
   */
  readonly online?: { readonly component: string; readonly step: string; readonly oldSchema: SchemaShape | undefined };
  /** Rows per batch of `backfill` and of a volatile default's backfill. Default 1000. */
  readonly batchSize?: number;
}

type Db = Kysely<any>;

/** How one unit of DDL may run. */
interface UnitOptions {
  /** Several statements that must commit together: a transaction of their own. */
  readonly atomic?: boolean;
  /**
   * The statement's lock lets reads and writes through (CREATE INDEX CONCURRENTLY,
   * VALIDATE CONSTRAINT): it may wait up to the whole remaining budget, since nobody
   * queues behind it.
   */
  readonly harmlessWait?: boolean;
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

/** Whether PostgreSQL would rewrite the table to add a column with this default (a volatile one). */
async function defaultRewrites(db: Db, definition: ColumnDefinition, expression: RawBuilder<unknown>): Promise<boolean> {
  return withRollback(db, async (trx) => {
    const probe = `outageless_probe_${randomBytes(4).toString('hex')}`;
    await sql`create temporary table ${sql.id(probe)} (id integer)`.execute(trx);
    await sql`insert into ${sql.id(probe)} values (1)`.execute(trx);
    await sql`alter table ${sql.id(probe)} add column value ${dataType(definition.type)} default ${expression}`.execute(trx);
    // A fast (metadata-only) default is stored as the column's "missing" value; a volatile one
    // cannot be, so PostgreSQL wrote every row instead.
    const { rows } = await sql<{ missing: boolean }>`select a.atthasmissing as missing from pg_catalog.pg_attribute a
      where a.attrelid = ${sql.lit(probe)}::regclass and a.attname = 'value'`.execute(trx);
    return rows[0]?.missing !== true;
  });
}

async function checkState(db: Db, table: string, name: string): Promise<{ validated: boolean } | undefined> {
  const { rows } = await sql<{ validated: boolean }>`select k.convalidated as validated from pg_catalog.pg_constraint k
      join pg_catalog.pg_class c on c.oid = k.conrelid join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${inCurrentSchema} and c.relname = ${table} and k.conname = ${name} and k.contype = 'c'`.execute(db);
  return rows[0];
}

/** The name of the temporary CHECK that carries NOT NULL online (63 bytes at most). */
function notNullCheckName(table: string, column: string): string {
  return `${table}_${column}_nn`.slice(0, 63);
}

/** The single integer key `backfill` walks in ranges, if the table has one. */
async function integerKey(db: Db, table: string): Promise<string | undefined> {
  const live = await introspectTable(db, table);
  const key = live?.primaryKey?.columns;
  if (!live || !key || key.length !== 1) return undefined;
  const type = live.columns.find((c) => c.name === key[0])?.type;
  return type === 'integer' || type === 'bigint' || type === 'smallint' ? key[0] : undefined;
}

/**
 * Idempotent DDL helpers for the PostgreSQL family: `ctx.schema` in upgrade steps.
 *
 * Each helper reads the catalog (in `current_schema()`) and does nothing when the schema is
 * already as asked. How it changes the schema depends on where it runs:
 *
 * - **Outside a transaction** (an online step): every helper call is a short unit of its own
 *   on one pinned connection, under a short `lock_timeout`. A unit that times out has
 *   released every lock it took (its statement or transaction failed as a whole); it is
 *   retried with exponential backoff and jitter until the lock-wait budget is spent, and
 *   then fails naming the sessions that block it. Indexes are built `CONCURRENTLY`, foreign
 *   keys and checks are added `NOT VALID` and validated, NOT NULL goes through a validated
 *   CHECK, and a volatile default is set after the column and backfilled in batches, so no
 *   strong lock is ever held while rows are scanned or written.
 * - **Inside a transaction** (a maintenance-mode step): plain DDL under the same short
 *   `lock_timeout`, never retried inside the transaction: a savepoint would keep the locks
 *   the transaction already holds. The lock timeout fails the whole transaction, and the
 *   runner retries it as a whole.
 *
 * @example
 * ```ts
 * const schema = createSchemaHelpers(db, { lockTimeoutMs: 200, lockWaitMs: 30_000 })
 * await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true })
 * await schema.addIndex('assign', { columns: ['duedate'] })  // CONCURRENTLY outside a transaction
 * ```
 */
export function createSchemaHelpers(db: Db, options: SchemaHelperOptions = {}): SchemaHelpers {
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1) throw new RangeError(`lockTimeoutMs must be a positive integer, not ${lockTimeoutMs}`);
  const batchSize = options.batchSize ?? 1000;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, not ${batchSize}`);
  // Created lazily, so the budget counts from the first DDL, not from when the helpers were made.
  let ownBudget: LockWaitBudget | undefined;
  const budget = () => options.budget ?? (ownBudget ??= createLockWaitBudget(options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS));
  const inTransaction = db.isTransaction;

  /** Refuses, before anything is done, a helper that breaks the code still serving. */
  function guard(call: HelperCall): void {
    if (!options.online) return;
    const verdict = assessHelperCall(call, options.online.oldSchema);
    if (verdict.kind === 'breaking') {
      throw schemaErrors.unsafeOnline(options.online.component, options.online.step, `${verdict.reason}. Safe alternative: ${verdict.alternative}`);
    }
  }

  /** Runs one unit of DDL under the lock timeout (see the function's comment for the two modes). */
  async function unit<T>(what: string, table: string | undefined, work: (db: Db) => Promise<T>, how: UnitOptions = {}): Promise<T> {
    if (inTransaction) {
      const previous = await readLockTimeout(db);
      await setLockTimeout(db, `${lockTimeoutMs}ms`, true);
      let result: T;
      try {
        result = await work(db);
      } catch (error) {
        if (isLockTimeout(error)) {
          options.onLockTimeout?.(table);
          throw schemaErrors.lockTimeout(what, lockTimeoutMs, error);
        }
        throw error;
      }
      await setLockTimeout(db, previous, true);
      return result;
    }
    // A pool hands each query any connection: pin one so the setting applies, and put the
    // setting back before the connection returns to the pool.
    return db.connection().execute(async (connection) => {
      const previous = await readLockTimeout(connection);
      let outcome: { ok: true; value: T } | { ok: false; error: unknown };
      try {
        outcome = { ok: true, value: await retrying(connection, what, table, work, how) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      try {
        await setLockTimeout(connection, previous, false);
      } catch (error) {
        // The DDL's own error says more than a failed reset on a broken connection.
        if (outcome.ok) throw error;
      }
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    });
  }

  async function retrying<T>(connection: Db, what: string, table: string | undefined, work: (db: Db) => Promise<T>, how: UnitOptions): Promise<T> {
    const wait = budget();
    for (;;) {
      const timeout = how.harmlessWait ? Math.max(lockTimeoutMs, Math.floor(wait.remainingMs())) : lockTimeoutMs;
      await setLockTimeout(connection, `${timeout}ms`, false);
      try {
        return how.atomic ? await connection.transaction().execute((trx) => work(trx)) : await work(connection);
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        // The failed statement (or transaction) released every lock of this attempt.
        const attempt = wait.recordTimeout();
        const delay = backoffMs(attempt);
        if (how.harmlessWait || !wait.allows(delay + lockTimeoutMs)) {
          const blockers = await findBlockers(connection, table).catch(() => []);
          throw schemaErrors.lockWaitExceeded(what, table, attempt, lockTimeoutMs, wait.totalMs, blockers);
        }
        options.onRetry?.(what, attempt, delay);
        await sleep(delay);
      }
    }
  }

  const run = (statement: RawBuilder<unknown>) => (target: Db) => statement.execute(target).then(() => {});

  /** NOT NULL without a long ACCESS EXCLUSIVE scan: a validated CHECK proves it first. */
  async function setNotNull(table: string, column: string): Promise<void> {
    const what = `set not null on ${table}.${column}`;
    if (inTransaction) {
      await unit(what, table, run(sql`alter table ${sql.table(table)} alter column ${sql.id(column)} set not null`));
      return;
    }
    const check = notNullCheckName(table, column);
    if (!(await checkState(db, table, check))) {
      await unit(`${what} (add check ${check} not valid)`, table, run(sql`alter table ${sql.table(table)} add constraint ${sql.id(check)} check (${sql.id(column)} is not null) not valid`));
    }
    await unit(`${what} (validate ${check})`, table, run(sql`alter table ${sql.table(table)} validate constraint ${sql.id(check)}`), { harmlessWait: true });
    // With a valid CHECK in place, SET NOT NULL skips its scan (PostgreSQL 12+): a brief lock.
    await unit(
      what,
      table,
      async (trx) => {
        await sql`alter table ${sql.table(table)} alter column ${sql.id(column)} set not null`.execute(trx);
        await sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(check)}`.execute(trx);
      },
      { atomic: true },
    );
  }

  /** Updates rows in key-range batches, each its own statement (and so its own transaction online). */
  async function backfill(table: string, backfillOptions: BackfillOptions): Promise<number> {
    const assignments = Object.entries(backfillOptions.set);
    if (assignments.length === 0) throw new RangeError(`backfill of ${table}: set names no column`);
    const size = backfillOptions.batchSize ?? batchSize;
    const set = sql.join(assignments.map(([column, value]) => sql`${sql.id(column)} = ${defaultExpression(value as ColumnDefault) ?? sql`null`}`));
    const where = backfillOptions.where ? sql.raw(backfillOptions.where.sql) : sql`true`;
    const what = `backfill ${table}`;
    const key = await integerKey(db, table);
    let changed = 0;
    if (key) {
      const { rows } = await sql<{ low: string | null; high: string | null }>`select min(${sql.id(key)})::text as low, max(${sql.id(key)})::text as high from ${sql.table(table)}`.execute(db);
      if (rows[0]?.low == null || rows[0].high == null) return 0;
      for (let from = BigInt(rows[0].low), high = BigInt(rows[0].high); from <= high; from += BigInt(size)) {
        const to = from + BigInt(size);
        const result = await unit(what, table, (target) =>
          sql`update ${sql.table(table)} set ${set} where ${sql.id(key)} >= ${from.toString()} and ${sql.id(key)} < ${to.toString()} and (${where})`.execute(target),
        );
        changed += Number(result.numAffectedRows ?? 0n);
      }
      return changed;
    }
    if (!backfillOptions.where) {
      throw schemaErrors.objectMissing(what, 'the table has no single integer primary key to batch on, and no `where` says which rows are still to do');
    }
    // No integer key: batches of physical rows still to do; `where` must stop matching a row once it is done.
    for (;;) {
      const result = await unit(what, table, (target) =>
        sql`update ${sql.table(table)} set ${set} where ctid = any(array(select ctid from ${sql.table(table)} where ${where} limit ${size}))`.execute(target),
      );
      const count = Number(result.numAffectedRows ?? 0n);
      changed += count;
      if (count === 0) return changed;
    }
  }

  /**
   * A volatile default (`random()`, `gen_random_uuid()`) would rewrite the table under ACCESS
   * EXCLUSIVE. Online it becomes: add the column without it, set it for new rows, backfill
   * the old ones in batches, then NOT NULL through a validated CHECK. Each part is
   * idempotent, so a rerun after a crash finishes what is left.
   */
  async function volatileColumn(table: string, column: string, definition: ColumnDefinition, expression: RawBuilder<unknown>): Promise<void> {
    const what = `add column ${table}.${column}`;
    if (!(await columnExists(db, table, column))) {
      await unit(what, table, run(sql`alter table ${sql.table(table)} add column if not exists ${sql.id(column)} ${dataType(definition.type)}`));
    }
    await unit(`${what} (set default)`, table, run(sql`alter table ${sql.table(table)} alter column ${sql.id(column)} set default ${expression}`));
    await backfill(table, { set: { [column]: definition.default! }, where: { sql: `${quoteIdent(column)} is null` } });
    if (!definition.nullable) await setNotNull(table, column);
  }

  /** Whether an online volatile-default column was left part-way (crash between its parts). */
  async function volatileColumnUnfinished(table: string, column: string, definition: ColumnDefinition): Promise<boolean> {
    const current = (await introspectTable(db, table))?.columns.find((c) => c.name === column);
    if (!current) return false;
    return current.default !== (await expectedDefault(db, definition)) || (!definition.nullable && current.nullable);
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
      guard({ kind: 'createTable', table, definition });
      if (await tableExists(db, table)) return;
      // A new, empty table: its foreign keys lock the referenced tables only for a moment.
      await unit(`create table ${table}`, table, (trx) => createTable(trx, table, definition), { atomic: true });
    },

    async dropTable(table) {
      guard({ kind: 'dropTable', table });
      if (!(await tableExists(db, table))) return;
      await unit(`drop table ${table}`, table, (trx) => trx.schema.dropTable(table).ifExists().execute());
    },

    async renameTable(from, to) {
      guard({ kind: 'renameTable', from, to });
      if (!(await tableExists(db, from)) || (await tableExists(db, to))) return;
      await unit(
        `rename table ${from} to ${to}`,
        from,
        async (trx) => {
          const live = await introspectTable(trx, from);
          await trx.schema.alterTable(from).renameTo(to).execute();
          if (live) await renameDerived(trx, live, { from, to }, (name) => name);
        },
        { atomic: true },
      );
    },

    async addColumn(table, column, definition) {
      guard({ kind: 'addColumn', table, column, definition });
      const expression = definition.autoIncrement ? undefined : defaultExpression(definition.default);
      const volatile = !inTransaction && expression !== undefined && typeof definition.default === 'object' && (await defaultRewrites(db, definition, expression));
      if (await columnExists(db, table, column)) {
        if (volatile && (await volatileColumnUnfinished(table, column, definition))) await volatileColumn(table, column, definition, expression);
        return;
      }
      if (volatile) {
        await volatileColumn(table, column, definition, expression);
        return;
      }
      // A constant default is stored once in the catalog: metadata only, a brief lock.
      await unit(`add column ${table}.${column}`, table, (trx) =>
        trx.schema.alterTable(table).addColumn(column, dataType(definition.type), columnClauses(definition)).execute(),
      );
    },

    async dropColumn(table, column) {
      guard({ kind: 'dropColumn', table, column });
      if (!(await columnExists(db, table, column))) return;
      await unit(`drop column ${table}.${column}`, table, run(sql`alter table ${sql.table(table)} drop column if exists ${sql.id(column)}`));
    },

    async renameColumn(table, from, to) {
      guard({ kind: 'renameColumn', table, from, to });
      if (!(await columnExists(db, table, from)) || (await columnExists(db, table, to))) return;
      await unit(
        `rename column ${table}.${from} to ${to}`,
        table,
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
      guard({ kind: 'changeColumn', table, column, definition });
      const what = `change column ${table}.${column}`;
      const current = (await introspectTable(db, table))?.columns.find((c) => c.name === column);
      if (!current) throw schemaErrors.objectMissing(what, `table ${table} has no column ${column}`);
      const type = postgresType(definition.type);
      const identity = definition.autoIncrement === true;
      const nullable = !identity && definition.nullable === true;
      const fallback = await expectedDefault(db, definition);
      const expression = identity ? undefined : defaultExpression(definition.default);

      const alter = (action: RawBuilder<unknown>) => sql`alter table ${sql.table(table)} alter column ${sql.id(column)} ${action}`;
      // Catalog-only changes, in one brief transaction; the type change (a rewrite) with them.
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
      if (!current.nullable && nullable) statements.push(alter(sql`drop not null`));
      if (identity && !current.identity) {
        statements.push(alter(sql`add generated by default as identity`));
        // Existing rows keep their ids: start the sequence after the highest.
        statements.push(sql`select pg_catalog.setval(pg_catalog.pg_get_serial_sequence(${table}, ${column}),
          (select coalesce(max(${sql.id(column)}), 0) + 1 from ${sql.table(table)}), false)`);
      }
      if (statements.length > 0) {
        await unit(
          what,
          table,
          async (trx) => {
            for (const statement of statements) await statement.execute(trx);
          },
          { atomic: true },
        );
      }
      if (current.nullable && !nullable) {
        // The default is in place first, so rows that old code inserts meanwhile get it;
        // rows already NULL take it in batches before NOT NULL is proven.
        if (expression) await backfill(table, { set: { [column]: definition.default! }, where: { sql: `${quoteIdent(column)} is null` } });
        await setNotNull(table, column);
      }
    },

    async addIndex(table, index: IndexDefinition) {
      guard({ kind: 'addIndex', table, index });
      const name = indexName(table, index);
      if ((await indexState(db, table, name))?.valid) return;
      const concurrently = !inTransaction;
      const dropInvalid = sql`drop index ${sql.raw(concurrently ? 'concurrently ' : '')}if exists ${sql.id(name)}`;
      await unit(
        `add index ${name} on ${table}`,
        table,
        async (target) => {
          // A concurrent build that failed (a lock timeout, a duplicate key) leaves an invalid index.
          if ((await indexState(target, table, name))?.valid === false) await dropInvalid.execute(target);
          try {
            await createIndexStatement(table, index, { concurrently }).execute(target);
          } catch (error) {
            // Never leave an invalid index behind: writers would keep maintaining it for nothing.
            if (concurrently) await dropInvalid.execute(target).catch(() => {});
            throw error;
          }
        },
        { harmlessWait: concurrently },
      );
    },

    async dropIndex(table, index) {
      guard({ kind: 'dropIndex', table, index });
      const name = typeof index === 'string' ? index : indexName(table, index);
      if (!(await indexState(db, table, name))) return;
      await unit(`drop index ${name} on ${table}`, table, run(sql`drop index ${sql.raw(inTransaction ? '' : 'concurrently ')}if exists ${sql.id(name)}`), {
        harmlessWait: !inTransaction,
      });
    },

    async addForeignKey(table, foreignKey: ForeignKeyDefinition) {
      guard({ kind: 'addForeignKey', table, foreignKey });
      const name = foreignKeyName(table, foreignKey);
      const state = await foreignKeyState(db, table, name);
      if (state?.validated) return;
      const what = `add foreign key ${name} on ${table}`;
      if (!state) {
        // In a transaction the lock is held to commit anyway, so one statement is as good.
        await unit(what, table, run(addForeignKeyStatement(table, foreignKey, { notValid: !inTransaction })));
      }
      if (!inTransaction || state) {
        // VALIDATE takes a lock that lets reads and writes through while it checks existing rows.
        await unit(`validate foreign key ${name} on ${table}`, table, run(sql`alter table ${sql.table(table)} validate constraint ${sql.id(name)}`), { harmlessWait: !inTransaction });
      }
    },

    async dropForeignKey(table, foreignKey) {
      guard({ kind: 'dropForeignKey', table, foreignKey });
      const name = typeof foreignKey === 'string' ? foreignKey : foreignKeyName(table, foreignKey);
      if (!(await foreignKeyState(db, table, name))) return;
      await unit(`drop foreign key ${name} on ${table}`, table, run(sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(name)}`));
    },

    async addCheck(table, name, expression) {
      guard({ kind: 'addCheck', table, name, expression });
      const state = await checkState(db, table, name);
      if (state?.validated) return;
      const what = `add check ${name} on ${table}`;
      if (!state) await unit(what, table, run(sql`alter table ${sql.table(table)} add constraint ${sql.id(name)} check (${sql.raw(expression)})${sql.raw(inTransaction ? '' : ' not valid')}`));
      if (!inTransaction || state) {
        await unit(`validate check ${name} on ${table}`, table, run(sql`alter table ${sql.table(table)} validate constraint ${sql.id(name)}`), { harmlessWait: !inTransaction });
      }
    },

    async dropCheck(table, name) {
      guard({ kind: 'dropCheck', table, name });
      if (!(await checkState(db, table, name))) return;
      await unit(`drop check ${name} on ${table}`, table, run(sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(name)}`));
    },

    async backfill(table, backfillOptions) {
      guard({ kind: 'backfill', table });
      return backfill(table, backfillOptions);
    },
  };
  return helpers;
}

/** Quotes an identifier for SQL text built outside Kysely's `sql.id`. */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
