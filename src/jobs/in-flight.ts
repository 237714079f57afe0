import { Kysely, sql } from 'kysely';
import type { SiteDatabase } from '../database/open.ts';
import { jobErrors } from './errors.ts';
import { eventQueue, JOBS_SCHEMA, taskQueuePrefix } from './names.ts';

/**
 * "Events already being processed when maintenance starts finish first" (seed 001, step 4).
 *
 * These read pg-boss's job table directly, so the CLI (`outageless maintenance enable
 * --component`) and the staged upgrade runner can wait without starting a pg-boss worker,
 * and they work whichever front runs the job.
 *
 * Why waiting after the pause is enough: a worker claims an event job (it becomes `active` in
 * the database) BEFORE it reads the component's state from the database, and gives the job
 * back untouched if that read shows the pause (see runtime.ts). So once the pause has
 * committed, any job that will still run was already `active` when it committed, and a wait
 * that starts after the pause sees it.
 */

export type InFlightKind = 'event' | 'task';

export interface InFlightJob {
  readonly queue: string;
  readonly count: number;
}

/** Active (running) jobs of the given components' queues; empty when pg-boss was never started on the site. */
export async function readInFlightJobs(
  db: Kysely<any>,
  components: readonly string[],
  kinds: readonly InFlightKind[] = ['event', 'task'],
): Promise<InFlightJob[]> {
  if (components.length === 0 || kinds.length === 0) return [];
  const { rows: present } = await sql<{ present: boolean }>`select to_regclass(${`${JOBS_SCHEMA}.job`}) is not null as present`.execute(db);
  if (!present[0]?.present) return [];
  const events = kinds.includes('event') ? components.map(eventQueue) : [];
  const prefixes = kinds.includes('task') ? components.map(taskQueuePrefix) : [];
  const { rows } = await sql<{ queue: string; count: number | string }>`
    select name as queue, count(*) as count from ${sql.table(`${JOBS_SCHEMA}.job`)}
     where state = 'active'
       and (name = any(${events}::text[]) or exists (select 1 from unnest(${prefixes}::text[]) as p where starts_with(name, p)))
     group by name order by name`.execute(db);
  return rows.map((row) => ({ queue: row.queue, count: Number(row.count) }));
}

/**
 * Waits until no job of `components` is running (events, and by default tasks too), polling
 * the database. Call it right after pausing them; throws `OUTAGELESS_ERR_JOBS_STILL_ACTIVE`
 * when `timeoutMs` runs out.
 *
 * A subplugin pauses with its parent: pass the parent and its subplugins together.
 *
 * @example
 * ```ts
 * await setComponentState(database.db, 'mod_assign', 'maintenance')
 * await waitForInFlightJobs(database, ['mod_assign', 'assignsubmission_file'], { timeoutMs: 60_000 })
 * ```
 */
export async function waitForInFlightJobs(
  database: SiteDatabase | Kysely<any>,
  components: string | readonly string[],
  options: { timeoutMs: number; kinds?: readonly InFlightKind[]; pollMs?: number },
): Promise<void> {
  const db = database instanceof Kysely ? database : database.db;
  const list = typeof components === 'string' ? [components] : components;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const active = await readInFlightJobs(db, list, options.kinds);
    if (active.length === 0) return;
    if (Date.now() >= deadline) throw jobErrors.stillActive(list, active, options.timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.pollMs ?? 100, Math.max(1, deadline - Date.now()))));
  }
}

/**
 * Waits until no event of `component` is being processed (tasks are not waited for).
 *
 * @example
 * ```ts
 * await waitForInFlightEvents(database, 'mod_assign', 30_000)
 * ```
 */
export function waitForInFlightEvents(database: SiteDatabase | Kysely<any>, component: string | readonly string[], timeoutMs: number): Promise<void> {
  return waitForInFlightJobs(database, component, { timeoutMs, kinds: ['event'] });
}
