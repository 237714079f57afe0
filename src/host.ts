/**
 * `outageless/host`: the API for host applications and tools: discover a site, open its
 * database, plan and run upgrades, operate flags, caches and jobs. Plugin files import the
 * lighter `outageless` entry instead.
 *
 * @example
 * ```ts
 * import { discoverSite, openDatabase, runUpgrade } from 'outageless/host'
 *
 * const database = await openDatabase('postgres://postgres@127.0.0.1:5432/lms')
 * const result = await runUpgrade({ database, code: await discoverSite('/srv/lms'), mode: 'online' })
 * ```
 */
export * from './index.ts';
export { discoverSite, type Component, type SiteCode } from './component/discover.ts';
export { openDatabase, type SiteDatabase } from './database/open.ts';
export { resolveDatabaseUrl } from './database/url.ts';
export { buildPlan, type Plan, type PlanItem, type PlannedStep } from './plan/plan.ts';
export { readPlan } from './plan/read.ts';
export { runUpgrade, type UpgradeOptions, type UpgradeResult, type UpgradeEvent, type ComponentPause } from './upgrade/run.ts';
export { setSiteMaintenance, setUiUpgradeLock, bumpCacheRevision, readFlags, type SiteFlags } from './state/flags.ts';
export { setComponentState, readComponentStates, type ComponentState, type ComponentMaintenance } from './state/component-state.ts';
export {
  createCacheStore, cacheStoreFromDefinitions, attachCaches, purgeCaches, purgePlannedCaches, loadCacheDefinitions, cacheErrors,
  type Cache, type CacheStore, type CacheStoreOptions, type CacheRevisions, type CacheHost, type PurgeTarget, type PurgeResult,
} from './caches/index.ts';
export { startJobs, type Jobs, type JobsOptions, type EmitOptions, type EmitResult, type TaskRun } from './jobs/runtime.ts';
export { waitForInFlightJobs, waitForInFlightEvents, readInFlightJobs, type InFlightJob, type InFlightKind } from './jobs/in-flight.ts';
export { readDeferredTasks, type DeferredTask } from './jobs/deferred.ts';
export { jobErrors } from './jobs/errors.ts';
export { JOBS_SCHEMA } from './jobs/names.ts';
