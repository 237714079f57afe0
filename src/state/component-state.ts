import type { Kysely } from 'kysely';
import { notifyStateChanged } from '../database/open.ts';
import { ensureStateTables, tableExists } from './tables.ts';

/**
 * Per-component maintenance (seed 001): a component goes normal → maintenance →
 * post-install (admins only) → normal while the rest of the site serves. The state lives in
 * the site database and every change sends a NOTIFY, like the site flags.
 */
export type ComponentMaintenance = 'maintenance' | 'post-install';

export interface ComponentState {
  readonly component: string;
  readonly state: ComponentMaintenance;
  readonly reason: string | null;
  /** The upgrade run that paused it, or null when an operator did. */
  readonly pausedByRun: string | null;
  readonly since: Date;
}

/** Components that are not normal, keyed by name. */
export async function readComponentStates(db: Kysely<any>): Promise<ReadonlyMap<string, ComponentState>> {
  if (!(await tableExists(db, 'outageless_component_state'))) return new Map();
  const rows = await db.selectFrom('outageless_component_state').selectAll().execute();
  return new Map(rows.map((row) => [row.component as string, {
    component: row.component, state: row.state, reason: row.reason, pausedByRun: row.paused_by_run, since: row.since,
  }]));
}

/**
 * Moves a component to `state` (`normal` deletes its row).
 *
 * @example
 * ```ts
 * await setComponentState(db, 'mod_assign', 'maintenance', { reason: 'replacing code' })
 * ```
 */
export async function setComponentState(
  db: Kysely<any>,
  component: string,
  state: ComponentMaintenance | 'normal',
  options: { reason?: string | null; pausedByRun?: string | null } = {},
): Promise<void> {
  await ensureStateTables(db);
  if (state === 'normal') {
    await db.deleteFrom('outageless_component_state').where('component', '=', component).execute();
  } else {
    const values = { state, reason: options.reason ?? null, paused_by_run: options.pausedByRun ?? null, since: new Date() };
    await db
      .insertInto('outageless_component_state')
      .values({ component, ...values })
      // Moving to post-install keeps who paused it; a fresh pause records the new owner.
      .onConflict((oc) => oc.column('component').doUpdateSet(state === 'post-install' ? { state, since: values.since } : values))
      .execute();
  }
  await notifyStateChanged(db, `component:${component}:${state}`);
}
