import { sql, type Kysely } from 'kysely';
import { tableExists } from '../state/tables.ts';

/**
 * Durable record of scheduled tasks that came due while their component was paused
 * (table `outageless_deferred_task`, one row per task however often it came due).
 *
 * Exactly once after resume, with any number of fronts:
 * - Deferring: the component's state row is read `FOR SHARE` in the same transaction that
 *   writes the deferral. A resume deletes that row, so it waits for the deferral to commit;
 *   the fronts only replay after the resume committed (they learn of it by NOTIFY or poll),
 *   so they see the deferral. If the resume committed first, the read finds no pause and the
 *   task runs instead of deferring.
 * - Replaying: a front claims rows with `DELETE … RETURNING` and enqueues the task in the same
 *   transaction. Two fronts racing for a row: the second one's delete finds it gone, so one
 *   front enqueues, and a crash between claim and enqueue rolls both back.
 */

export interface DeferredTask {
  readonly component: string;
  readonly task: string;
  readonly times: number;
  readonly firstDeferredAt: Date;
  readonly lastDeferredAt: Date;
}

/** The pause that holds `component` (itself, or its parent for a subplugin), read from the database. */
export async function readPause(
  db: Kysely<any>,
  component: string,
  parent: string | undefined,
  options: { forShare?: boolean } = {},
): Promise<{ component: string; state: string } | undefined> {
  const units = parent ? [component, parent] : [component];
  const { rows } = await sql<{ component: string; state: string }>`
    select component, state from outageless_component_state where component = any(${units}::text[])
    ${options.forShare ? sql`for share` : sql``}`.execute(db);
  return rows[0];
}

/** Records (or counts again) a deferral. Run in the transaction that read the pause `FOR SHARE`. */
export async function recordDeferral(db: Kysely<any>, component: string, task: string, parent: string | undefined, times = 1): Promise<void> {
  await sql`
    insert into outageless_deferred_task (component, task, parent, times, first_deferred_at, last_deferred_at)
    values (${component}, ${task}, ${parent ?? null}, ${times}, now(), now())
    on conflict (component, task) do update
       set times = outageless_deferred_task.times + excluded.times, last_deferred_at = excluded.last_deferred_at, parent = excluded.parent`.execute(db);
}

/**
 * Claims the deferrals of `tasks` (`<component>/<task>` keys) whose component is no longer
 * paused, deleting them. Run it in the transaction that enqueues them.
 */
export async function claimDeferrals(db: Kysely<any>, tasks: readonly string[]): Promise<DeferredTask[]> {
  if (tasks.length === 0) return [];
  const { rows } = await sql<{ component: string; task: string; times: number; first_deferred_at: Date; last_deferred_at: Date }>`
    delete from outageless_deferred_task d
     where (d.component || '/' || d.task) = any(${tasks}::text[])
       and not exists (select 1 from outageless_component_state s where s.component = d.component or s.component = d.parent)
    returning d.component, d.task, d.times, d.first_deferred_at, d.last_deferred_at`.execute(db);
  return rows.map((row) => ({
    component: row.component, task: row.task, times: Number(row.times), firstDeferredAt: new Date(row.first_deferred_at), lastDeferredAt: new Date(row.last_deferred_at),
  }));
}

/**
 * Tasks waiting for their component to come back, oldest first (for `status` and operators).
 *
 * @example
 * ```ts
 * for (const d of await readDeferredTasks(database.db)) console.log(`${d.component}/${d.task} came due ${d.times}×`)
 * ```
 */
export async function readDeferredTasks(db: Kysely<any>): Promise<DeferredTask[]> {
  if (!(await tableExists(db, 'outageless_deferred_task'))) return [];
  const rows = await db.selectFrom('outageless_deferred_task').selectAll().orderBy('first_deferred_at').execute();
  return rows.map((row) => ({
    component: row.component, task: row.task, times: Number(row.times), firstDeferredAt: new Date(row.first_deferred_at), lastDeferredAt: new Date(row.last_deferred_at),
  }));
}
