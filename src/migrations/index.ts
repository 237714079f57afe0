/**
 * Batched background migrations (DESIGN §4.6): the durable store and its lifecycle commands.
 *
 * @example
 * ```ts
 * import { readBackgroundMigrations, pauseBackgroundMigration } from '../migrations/index.ts'
 * for (const m of await readBackgroundMigrations(db)) if (m.state === 'running') await pauseBackgroundMigration(db, m.component, m.id)
 * ```
 */
export * from './store.ts';
export { migrationErrors } from './errors.ts';
export type { BackgroundMigration, BackgroundState, BackgroundStep, BatchContext } from './types.ts';
export {
  runBatch, nextBatchSize, findBackgroundStep, finishBackgroundMigration, startBackgroundWorker,
  type BatchOptions, type BatchOutcome, type FinishOptions, type BackgroundWorker, type BackgroundWorkerOptions, type BackgroundLogger,
} from './engine.ts';
