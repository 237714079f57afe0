/**
 * Long work out of the window (DESIGN §4.6): batched background migrations. This file is the
 * contract between the plan and runner (which queue them) and the engine (which works them).
 */

// The step shapes are part of the contract plugin authors write to, so they live with it.
export type { BackgroundStep, BatchContext } from '../component/definitions.ts';

export type BackgroundState = 'queued' | 'running' | 'paused' | 'finished' | 'failed' | 'cancelled';

/** One background migration as the site database records it (`outageless_background_migration`). */
export interface BackgroundMigration {
  readonly component: string;
  readonly id: string;
  readonly version: number;
  readonly table: string;
  readonly key: string;
  readonly state: BackgroundState;
  /** Key range at queue time; null bounds for an empty table. */
  readonly minKey: number | null;
  readonly maxKey: number | null;
  /** Every key up to and including this one is done; null before the first batch. */
  readonly cursor: number | null;
  readonly batchSize: number;
  readonly batches: number;
  readonly rowsChanged: number;
  readonly error: string | null;
  readonly queuedAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly updatedAt: Date;
}
