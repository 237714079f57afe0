import type { BatchContext } from './definitions.ts';

/**
 * Data formats with a read version and a write version (the Open edX two-phase deploy): rows
 * carry the version of the format they were written in, code stamps `write` on what it
 * writes and reads only rows at or above `read`. Phase 1 raises `write`; `outageless data
 * backfill` re-writes the old rows; phase 2 raises `read` once no row and no live front is
 * below it. This file stays free of imports with weight: every `db/formats.ts` loads it.
 */

/** What a backfill batch gets: the batch's key range, plus the version to stamp. */
export interface FormatBackfillContext extends BatchContext {
  /** The code's write version: the version every re-written row must carry. */
  readonly write: number;
  /** The version column of the format's table. */
  readonly versionColumn: string;
}

/**
 * One format of a component's `db/formats.ts`.
 *
 * The backfill lives in the definition (not in a separate named export), so one default
 * export declares everything and an unknown key is a coded error.
 */
export interface FormatDefinition {
  /** A table of the component's `db/schema.ts`. */
  readonly table: string;
  /** An integer column of `table` holding the version each row was written in. */
  readonly versionColumn: string;
  /** The lowest version the code can read. At most `write`. */
  readonly read: number;
  /** The version the code stamps on what it writes. */
  readonly write: number;
  /** The integer key column batches split (default `id`). */
  readonly key?: string;
  /**
   * Re-writes rows of keys `from..to` whose version is below `write` (as the new code writes
   * them) and returns how many it changed. Run by `outageless data backfill` as a background
   * migration.
   */
  backfill?(context: FormatBackfillContext): Promise<number> | number;
  /** Target duration of one backfill batch in ms (default 100). */
  readonly targetBatchMs?: number;
  readonly batchSize?: { readonly min?: number; readonly initial?: number; readonly max?: number };
}

export interface FormatsDefinition {
  readonly kind: 'formats';
  readonly formats: Readonly<Record<string, FormatDefinition>>;
}

/**
 * Declares a component's data formats (`db/formats.ts`, default export).
 *
 * @example
 * ```ts
 * import { defineFormats } from 'outageless'
 * export default defineFormats({
 *   submission: {
 *     table: 'assign_submissions', versionColumn: 'format_version', read: 1, write: 2,
 *     async backfill({ db, from, to, write }) {
 *       const result = await db.updateTable('assign_submissions').set({ format_version: write, body_v2: sql`upper(body)` })
 *         .where('id', '>=', from).where('id', '<=', to).where('format_version', '<', write).executeTakeFirst()
 *       return Number(result.numUpdatedRows)
 *     },
 *   },
 * })
 * ```
 */
export function defineFormats(formats: Readonly<Record<string, FormatDefinition>>): FormatsDefinition {
  return Object.freeze({ kind: 'formats', formats });
}
