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
