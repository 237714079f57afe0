/**
 * `outageless`: what plugin files import. Only the `define*` helpers, their types and the
 * error types: every component's version.ts imports this entry, so it must load nothing
 * heavy (a 500-component site imports it 500 times). Host applications use
 * `outageless/host`; fronts use `outageless/fastify`.
 *
 * @example
 * ```ts
 * import { defineVersion } from 'outageless'
 * export default defineVersion({ component: 'mod_assign', version: 2026010100 })
 * ```
 */
export { defineVersion, defineUpgrade, defineInstall } from './component/definitions.ts';
export type {
  VersionDefinition, UpgradeDefinition, UpgradeStep, UpgradeMetadata, InstallDefinition, StepContext, StepPhase,
  OutageClass, CachePurge, Maturity,
} from './component/definitions.ts';
export { defineFormats } from './component/formats.ts';
export type { FormatDefinition, FormatsDefinition, FormatBackfillContext } from './component/formats.ts';
export { defineSchema } from './schema/definition.ts';
export type { SchemaDefinition, TypedSchemaDefinition, TableDefinition, ColumnDefinition, ColumnType, ColumnDefault, IndexDefinition, ForeignKeyDefinition } from './schema/definition.ts';
export type { TablesOf, RowOf, ColumnOf, ColumnValue } from './schema/table-types.ts';
export type { SchemaHelpers } from './schema/helpers.ts';
export { defineCaches } from './caches/define.ts';
export type { CacheDefinition, CacheDefinitions, CacheMode } from './caches/definitions.ts';
export { defineTasks, defineObservers } from './jobs/define.ts';
export type {
  TaskDefinition, ObserverDefinition, TaskHandler, ObserverHandler, TaskHandlers, ObserverHandlers, JobContext, TaskContext, EmittedEvent, JobsLogger,
} from './jobs/definitions.ts';
export { OutagelessError, isOutagelessError, errors, ExitCode } from './errors.ts';
