import type { Kysely } from 'kysely';
import { notifyStateChanged } from '../database/open.ts';
import type { UpgradeLock } from '../database/upgrade-lock.ts';
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

/**
 * Pauses left by runs that no longer hold the upgrade lock (killed, or failed and gone).
 * Without `adoptBy` they are returned to normal; with it (a run that holds the lock now)
 * they become that run's, so a component half-way through its upgrade stays paused until
 * the new run is done with it. A pause an operator set (no run) is never touched, and each
 * row changes only while it still names the dead run, so a pause a live run takes at the
 * same moment survives.
 *
 * @example
 * ```ts
 * const reclaimed = await reclaimStalePauses(database.db, database.upgradeLock)
 * for (const pause of reclaimed) console.log(`${pause.component} was left paused by run ${pause.pausedByRun}`)
 * ```
 */
export async function reclaimStalePauses(db: Kysely<any>, lock: UpgradeLock, adoptBy?: string): Promise<readonly ComponentState[]> {
  const owned = [...(await readComponentStates(db)).values()].filter((pause) => pause.pausedByRun !== null && pause.pausedByRun !== adoptBy);
  if (owned.length === 0) return [];
  const live = await lock.liveRuns([...new Set(owned.map((pause) => pause.pausedByRun!))]);
  const reclaimed: ComponentState[] = [];
  for (const pause of owned.filter((candidate) => !live.has(candidate.pausedByRun!))) {
    const result = adoptBy
      ? await db.updateTable('outageless_component_state').set({ paused_by_run: adoptBy })
          .where('component', '=', pause.component).where('paused_by_run', '=', pause.pausedByRun).executeTakeFirst()
      : await db.deleteFrom('outageless_component_state')
          .where('component', '=', pause.component).where('paused_by_run', '=', pause.pausedByRun).executeTakeFirst();
    const changed = 'numUpdatedRows' in result ? result.numUpdatedRows : result.numDeletedRows;
    if (changed > 0n) reclaimed.push(pause);
  }
  if (reclaimed.length > 0 && !adoptBy) {
    for (const pause of reclaimed) await notifyStateChanged(db, `component:${pause.component}:normal`);
  }
  return reclaimed;
}
