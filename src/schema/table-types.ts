/**
 * Row types derived from a `db/schema.ts` definition, for the Kysely instance routes get from
 * `app.outagelessDatabase.kysely<Tables>()`. Type-only: nothing here exists at run time, so
 * the lean `outageless` entry can export it.
 *
 * @example
 * ```ts
 * import type { TablesOf } from 'outageless'
 * type Tables = TablesOf<typeof import('./db/schema.ts').default>
 * // Tables['block_news_post'] is { id: Generated<number>; subject: string; summary: string | null; … }
 * ```
 */
import type { Generated } from 'kysely';
import type { ColumnDefinition, ColumnType, TableDefinition, TypedSchemaDefinition } from './definition.ts';

/**
 * What a column of each portable type reads as. int8 is parsed to a number by the site
 * database (versions and ids fit in 2^53), numeric stays a string (exact decimals), json is
 * whatever was stored.
 */
export type ColumnValue<Type extends ColumnType> = Type extends 'integer' | 'bigint'
  ? number
  : Type extends 'boolean'
    ? boolean
    : Type extends 'timestamp'
      ? Date
      : Type extends 'json'
        ? unknown
        : Type extends 'binary'
          ? Uint8Array
          : string;

/** A nullable column reads `null` too; a column the database fills in may be left out of inserts. */
export type ColumnOf<Column extends ColumnDefinition> = Column extends { readonly autoIncrement: true } | { readonly default: unknown }
  ? Generated<NullableValue<Column>>
  : NullableValue<Column>;

type NullableValue<Column extends ColumnDefinition> = Column extends { readonly nullable: true } ? ColumnValue<Column['type']> | null : ColumnValue<Column['type']>;

/** One table's row type: its columns, mapped. */
export type RowOf<Table extends TableDefinition> = { -readonly [Name in keyof Table['columns']]: ColumnOf<Table['columns'][Name]> };

/** Every table of a schema, keyed by table name: the `DB` type parameter Kysely wants. */
export type TablesOf<Schema extends TypedSchemaDefinition<Readonly<Record<string, TableDefinition>>>> = {
  -readonly [Name in keyof Schema['tables']]: RowOf<Schema['tables'][Name]>;
};
