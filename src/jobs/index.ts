/**
 * Scheduled tasks and event observers on pg-boss, with per-component maintenance.
 * See runtime.ts for the semantics and definitions.ts for the plugin author's contract.
 */
export {
  defineTasks, defineObservers, loadJobCatalog, validateTasks, validateObservers, cronProblem,
  type TaskDefinition, type ObserverDefinition, type TaskHandler, type ObserverHandler, type TaskHandlers, type ObserverHandlers,
  type JobContext, type TaskContext, type EmittedEvent, type JobsLogger, type RuntimeModule, type JobCatalog, type ComponentJobs,
  type CatalogTask, type CatalogObserver,
} from './definitions.ts';
export { startJobs, type Jobs, type JobsOptions, type EmitOptions, type EmitResult, type TaskRun } from './runtime.ts';
export { waitForInFlightJobs, waitForInFlightEvents, readInFlightJobs, type InFlightJob, type InFlightKind } from './in-flight.ts';
export { readDeferredTasks, type DeferredTask } from './deferred.ts';
export { importRuntimeModule, loadRuntimeModules } from './modules.ts';
export { jobErrors } from './errors.ts';
export { JOBS_SCHEMA, DEAD_EVENT_QUEUE, eventQueue, taskQueue } from './names.ts';
