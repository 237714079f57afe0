/**
 * Where the jobs live: pg-boss's schema in the site database and the queue names, shared by
 * the runtime and by the CLI helpers that read pg-boss's tables without a running instance.
 */

/** The PostgreSQL schema pg-boss's tables live in (left out of `check-schema`, which reads only the current schema). */
export const JOBS_SCHEMA = 'outageless_boss';

/** Channel of the NOTIFY that wakes other fronts' event workers after an emit. */
export const JOBS_CHANNEL = 'outageless_jobs';

/** The queue of a component's events: one queue per observing component, processed in order. */
export function eventQueue(component: string): string {
  return `outageless.event.${component}`;
}

/** The queue of one scheduled task. */
export function taskQueue(component: string, task: string): string {
  return `outageless.task.${component}.${task}`;
}

/** Prefix of every task queue of a component. */
export function taskQueuePrefix(component: string): string {
  return `outageless.task.${component}.`;
}

/** Events whose observer kept failing, with the error, for an operator to inspect or re-send. */
export const DEAD_EVENT_QUEUE = 'outageless.dead.event';

/** Splits a task queue name back into component and task (undefined for other queues). */
export function parseTaskQueue(queue: string): { component: string; task: string } | undefined {
  const match = /^outageless\.task\.([^.]+)\.([^.]+)$/.exec(queue);
  return match ? { component: match[1]!, task: match[2]! } : undefined;
}
