import type { Kysely } from 'kysely';
import { tableExists } from './tables.ts';

/** A post step owed by a component whose main steps are done. */
export interface OwedStepRow {
  readonly component: string;
  readonly step: string;
  readonly version: number;
  readonly since: Date;
}

/**
 * Records post steps as owed, in the transaction that finishes their component's main steps,
 * so a crash can never leave the version moved on without them.
 *
 * @example
 * ```ts
 * await recordOwedSteps(trx, 'mod_quiz', [{ id: 'quiz_drop_answers', version: 2026060100 }])
 * ```
 */
export async function recordOwedSteps(db: Kysely<any>, component: string, steps: readonly { readonly id: string; readonly version: number }[]): Promise<void> {
  if (steps.length === 0) return;
  await db
    .insertInto('outageless_owed_step')
    .values(steps.map((step) => ({ component, step_id: step.id, version: step.version })))
    .onConflict((oc) => oc.columns(['component', 'step_id']).doNothing())
    .execute();
}

/** Every owed post step, oldest first. */
export async function readOwedSteps(db: Kysely<any>): Promise<OwedStepRow[]> {
  if (!(await tableExists(db, 'outageless_owed_step'))) return [];
  const rows = await db.selectFrom('outageless_owed_step').selectAll().orderBy('since').orderBy('component').orderBy('version').execute();
  return rows.map((row) => ({ component: row.component, step: row.step_id, version: Number(row.version), since: row.since }));
}

/** Marks an owed step done (it commits with the step's log row). */
export async function clearOwedStep(db: Kysely<any>, component: string, step: string): Promise<void> {
  await db.deleteFrom('outageless_owed_step').where('component', '=', component).where('step_id', '=', step).execute();
}
