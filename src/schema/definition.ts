/**
 * The declarative schema a component ships in `db/schema.ts`: portable column types,
 * keys, indexes and foreign keys. It is the install definition, and what `check-schema`
 * compares the live database with.
 *
 * @example
 * ```ts
 * import { defineSchema } from 'outageless'
 *
 * export default defineSchema({
 *   tables: {
 *     assign: {
 *       columns: {
 *         id: { type: 'bigint', autoIncrement: true },
 *         course: { type: 'bigint' },
 *         name: { type: 'varchar(255)', default: '' },
 *         grade: { type: 'numeric(10,5)', nullable: true },
 *         created: { type: 'timestamp', default: { sql: 'now()' } },
 *       },
 *       primaryKey: ['id'],
 *       indexes: [{ columns: ['course'] }],
 *     },
 *   },
 * })
 * ```
 */

/** Portable column types; each dialect maps them to its own DDL. */
export type ColumnType =
  | 'integer'
  | 'bigint'
  | 'text'
  | 'boolean'
  | 'timestamp'
  | 'json'
  | 'binary'
  | `varchar(${number})`
  | `numeric(${number},${number})`;

/** A column default: a literal, or SQL for expressions such as `now()`. */
export type ColumnDefault = string | number | boolean | null | { readonly sql: string };

export interface ColumnDefinition {
  readonly type: ColumnType;
  /** Columns are NOT NULL unless they say otherwise. */
  readonly nullable?: boolean;
  readonly default?: ColumnDefault;
  /** Database-generated ascending id (an identity column); implies NOT NULL. */
  readonly autoIncrement?: boolean;
}

export interface IndexDefinition {
  readonly columns: readonly string[];
  readonly unique?: boolean;
  /** Defaults to a name derived from table and columns, so install and upgrade agree. */
  readonly name?: string;
}

export type ReferentialAction = 'cascade' | 'restrict' | 'set null' | 'no action';

export interface ForeignKeyDefinition {
  readonly columns: readonly string[];
  readonly references: { readonly table: string; readonly columns: readonly string[] };
  readonly onDelete?: ReferentialAction;
  readonly name?: string;
}

export interface TableDefinition {
  readonly columns: Readonly<Record<string, ColumnDefinition>>;
  readonly primaryKey?: readonly string[];
  readonly indexes?: readonly IndexDefinition[];
  readonly foreignKeys?: readonly ForeignKeyDefinition[];
}

export interface SchemaDefinition {
  readonly kind: 'schema';
  readonly tables: Readonly<Record<string, TableDefinition>>;
}

/**
 * A schema whose table and column literals are kept in its type, so routes can derive typed
 * rows from it with {@link TablesOf}.
 */
export interface TypedSchemaDefinition<Tables extends Readonly<Record<string, TableDefinition>>> extends SchemaDefinition {
  readonly tables: Tables;
}

/**
 * Declares a component's tables. Returns the definition unchanged apart from its `kind`
 * tag; validation happens when the site is loaded, with the file name in every error.
 * The literal types are kept (a `const` type parameter), so `TablesOf<typeof schema>` gives
 * Kysely row types for routes.
 *
 * @example
 * ```ts
 * const schema = defineSchema({ tables: { block_news_post: { columns: { id: { type: 'bigint', autoIncrement: true }, subject: { type: 'text' } }, primaryKey: ['id'] } } })
 * type Tables = TablesOf<typeof schema>   // { block_news_post: { id: Generated<number>; subject: string } }
 * export default schema
 * ```
 */
export function defineSchema<const Tables extends Readonly<Record<string, TableDefinition>>>(definition: { readonly tables: Tables }): TypedSchemaDefinition<Tables> {
  return Object.freeze({ kind: 'schema', tables: definition.tables });
}

/** PostgreSQL caps identifiers at 63 bytes; longer derived names get a short hash suffix. */
const MAX_IDENTIFIER = 63;

function shorten(name: string): string {
  if (name.length <= MAX_IDENTIFIER) return name;
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  const suffix = `_${hash.toString(36)}`;
  return name.slice(0, MAX_IDENTIFIER - suffix.length) + suffix;
}

/** The name an index gets when it declares none. Install and upgrade helpers share it. */
export function indexName(table: string, index: IndexDefinition): string {
  return index.name ?? shorten(`${table}_${index.columns.join('_')}_${index.unique ? 'uix' : 'ix'}`);
}

/** The name a foreign key gets when it declares none. */
export function foreignKeyName(table: string, foreignKey: ForeignKeyDefinition): string {
  return foreignKey.name ?? shorten(`${table}_${foreignKey.columns.join('_')}_fk`);
}

/** The name of a table's primary key constraint. */
export function primaryKeyName(table: string): string {
  return shorten(`${table}_pk`);
}
