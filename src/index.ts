/**
 * outageless: upgrade plugin-based Node.js applications with the smallest outage each
 * change allows. This entry point is what plugin authors and host applications import.
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
export { defineSchema } from './schema/definition.ts';
export type { SchemaDefinition, TableDefinition, ColumnDefinition, ColumnType, ColumnDefault, IndexDefinition, ForeignKeyDefinition } from './schema/definition.ts';
export type { SchemaHelpers } from './schema/helpers.ts';
export { discoverSite, type Component, type SiteCode } from './component/discover.ts';
export { openDatabase, type SiteDatabase } from './database/open.ts';
export { resolveDatabaseUrl } from './database/url.ts';
export { buildPlan, type Plan, type PlanItem, type PlannedStep } from './plan/plan.ts';
export { readPlan } from './plan/read.ts';
export { runUpgrade, type UpgradeOptions, type UpgradeResult, type UpgradeEvent } from './upgrade/run.ts';
export { setSiteMaintenance, setUiUpgradeLock, bumpCacheRevision, readFlags, type SiteFlags } from './state/flags.ts';
export { OutagelessError, isOutagelessError, errors, ExitCode } from './errors.ts';
export {
  defineCaches, createCacheStore, cacheStoreFromDefinitions, attachCaches, purgeCaches, purgePlannedCaches, loadCacheDefinitions, cacheErrors,
  type CacheDefinition, type CacheDefinitions, type CacheMode, type Cache, type CacheStore, type CacheStoreOptions, type CacheRevisions,
  type CacheHost, type PurgeTarget, type PurgeResult,
} from './caches/index.ts';
export { defineTasks, defineObservers } from './jobs/definitions.ts';
export type {
  TaskDefinition, ObserverDefinition, TaskHandler, ObserverHandler, TaskHandlers, ObserverHandlers, JobContext, TaskContext, EmittedEvent, JobsLogger,
} from './jobs/definitions.ts';
export { startJobs, type Jobs, type JobsOptions, type EmitOptions, type EmitResult, type TaskRun } from './jobs/runtime.ts';
export { waitForInFlightJobs, waitForInFlightEvents, readInFlightJobs, type InFlightJob, type InFlightKind } from './jobs/in-flight.ts';
export { readDeferredTasks, type DeferredTask } from './jobs/deferred.ts';
export { jobErrors } from './jobs/errors.ts';
export { JOBS_SCHEMA } from './jobs/names.ts';
