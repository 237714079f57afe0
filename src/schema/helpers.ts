import type { ColumnDefault, ColumnDefinition, ForeignKeyDefinition, IndexDefinition, TableDefinition } from './definition.ts';

/**
 * `ctx.schema` inside an upgrade step: idempotent DDL. Every helper checks the live
 * database first, so a step that is rerun after a crash (or carried under two versions)
 * makes each change once. Every statement runs under a short lock timeout, so a step never
 * queues behind a long transaction while every query that arrives after it queues behind
 * the step. In an online step each helper call is its own short transaction, retried with
 * backoff when its lock is not free; helpers that would break the release still serving
 * (renames, drops, type changes) refuse there.
 *
 * @example
 * ```ts
 * defineUpgrade({
 *   steps: [{
 *     version: 2024050100, id: 'assign-add-duedate', outage: 'none',
 *     // Each call is its own short transaction; the index is built CONCURRENTLY.
 *     async run({ schema }) {
 *       await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true })
 *       await schema.addIndex('assign', { columns: ['duedate'] })
 *     },
 *   }],
 * })
 * ```
 */
export interface SchemaHelpers {
  hasTable(table: string): Promise<boolean>;
  hasColumn(table: string, column: string): Promise<boolean>;
  hasIndex(table: string, name: string): Promise<boolean>;
  /** Creates the table with its keys, indexes and foreign keys unless it exists. */
  createTable(table: string, definition: TableDefinition): Promise<void>;
  dropTable(table: string): Promise<void>;
  renameTable(from: string, to: string): Promise<void>;
  addColumn(table: string, column: string, definition: ColumnDefinition): Promise<void>;
  dropColumn(table: string, column: string): Promise<void>;
  renameColumn(table: string, from: string, to: string): Promise<void>;
  /** Brings an existing column's type, nullability and default to `definition`. */
  changeColumn(table: string, column: string, definition: ColumnDefinition): Promise<void>;
  addIndex(table: string, index: IndexDefinition): Promise<void>;
  /** Drops the index with the given name, or the one derived from `index`. */
  dropIndex(table: string, index: string | IndexDefinition): Promise<void>;
  addForeignKey(table: string, foreignKey: ForeignKeyDefinition): Promise<void>;
  dropForeignKey(table: string, foreignKey: string | ForeignKeyDefinition): Promise<void>;
  /** Adds a CHECK constraint (online: NOT VALID, then validated). `expression` is SQL. */
  addCheck(table: string, name: string, expression: string): Promise<void>;
  dropCheck(table: string, name: string): Promise<void>;
  /**
   * Updates existing rows in batches of the table's integer primary key (or, without one,
   * of the rows `where` still matches), each batch its own short statement, so no lock is
   * held across batches. Returns the number of rows changed. Make `where` select only rows
   * still to do, so a rerun after a crash picks up where it stopped.
   *
   * @example
   * ```ts
   * await schema.addColumn('assign', 'namelower', { type: 'varchar(255)', nullable: true })
   * await schema.backfill('assign', { set: { namelower: { sql: 'lower(name)' } }, where: { sql: 'namelower is null' } })
   * ```
   */
  backfill(table: string, options: BackfillOptions): Promise<number>;
}

export interface BackfillOptions {
  /** Column to value: a literal, or `{ sql }` for an expression over the row. */
  readonly set: Readonly<Record<string, ColumnDefault>>;
  /** SQL condition for the rows still to do. Required for tables without an integer key. */
  readonly where?: { readonly sql: string };
  /** Rows per batch; defaults to the helpers' `batchSize` (1000). */
  readonly batchSize?: number;
}
