import type { ObserverDefinition, TaskDefinition } from './definitions.ts';

// The helpers plugin files import: kept apart from validation so importing 'outageless'
// from hundreds of component files loads nothing heavy.

/**
 * Declares a component's scheduled tasks. Returns its argument unchanged (typed); a plain
 * array default export works the same.
 *
 * While the component (or its parent, for a subplugin) is in maintenance or post-install, a
 * task that comes due is not run: the deferral is recorded in the site database, and the task
 * runs exactly once when the component returns to normal, however many times it came due.
 *
 * @example
 * ```ts
 * export default defineTasks([{ name: 'send_due_reminders', schedule: '*\/5 * * * *' }])
 * ```
 */
export function defineTasks<const T extends readonly TaskDefinition[]>(tasks: T): T {
  return tasks;
}

/**
 * Declares which events a component observes and which handler of its `index.ts` receives
 * each. Returns its argument unchanged (typed).
 *
 * Events are delivered through pg-boss, one queue per component, one event at a time, in
 * emission order. While the component is paused, its events stay queued durably and are
 * processed, in order, when it returns.
 *
 * @example
 * ```ts
 * export default defineObservers([{ event: 'course_created', handler: 'onCourseCreated' }])
 * ```
 */
export function defineObservers<const T extends readonly ObserverDefinition[]>(observers: T): T {
  return observers;
}
