import type { ColumnDefinition, ForeignKeyDefinition, IndexDefinition, TableDefinition } from './definition.ts';

/**
 * `ctx.schema` inside an upgrade step: idempotent DDL. Every helper checks the live
 * database first, so a step that is rerun after a crash (or carried under two versions)
 * makes each change once. Every statement runs under a lock timeout and is retried when
 * the timeout hits, so a step never queues behind a long transaction while blocking every
 * query that arrives after it.
 *
 * @example
 * ```ts
 * defineUpgrade({
 *   steps: [{
 *     version: 2024050100, id: 'assign-add-duedate', outage: 'none',
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
}
