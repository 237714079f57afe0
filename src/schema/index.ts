/**
 * The schema layer: declarative schemas, their PostgreSQL DDL, idempotent upgrade helpers,
 * introspection and the install-versus-live diff behind `outageless check-schema`.
 */
export {
  defineSchema,
  foreignKeyName,
  indexName,
  primaryKeyName,
  type ColumnDefault,
  type ColumnDefinition,
  type ColumnType,
  type ForeignKeyDefinition,
  type IndexDefinition,
  type ReferentialAction,
  type SchemaDefinition,
  type TableDefinition,
} from './definition.ts';
export type { SchemaHelpers } from './helpers.ts';
export { schemaErrors } from './errors.ts';
export { createTable, installSchema, installTables, postgresType, validateSchema } from './ddl.ts';
export { createSchemaHelpers, type SchemaHelperOptions } from './postgres-helpers.ts';
export {
  introspectSchema,
  introspectTable,
  type IntrospectOptions,
  type LiveColumn,
  type LiveForeignKey,
  type LiveIndex,
  type LivePrimaryKey,
  type LiveReferentialAction,
  type LiveSchema,
  type LiveTable,
} from './introspect.ts';
export { compareSchemas, diffSchema, type DiffOptions, type SchemaDifference, type SchemaDifferenceKind } from './diff.ts';
