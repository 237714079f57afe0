import { errorFactory } from '../errors.ts';

/**
 * Typed errors of scheduled tasks and event observers. Codes are part of the public contract
 * (runbooks grep for them): never rename one.
 */

export const jobErrors = {
  /** `db/tasks.ts` or `db/events.ts` does not have the documented shape. */
  definitionInvalid: errorFactory('OUTAGELESS_ERR_JOB_DEFINITION', (file: string, component: string, field: string, problem: string) => ({
    message: `${field}: ${problem}`,
    location: { file, component, field },
    hint: file.endsWith('events.ts')
      ? `Make the default export of ${file} an array of { event, handler }, e.g. defineObservers([{ event: 'course_created', handler: 'onCourseCreated' }]).`
      : `Make the default export of ${file} an array of { name, schedule, description? }, e.g. defineTasks([{ name: 'send_due_reminders', schedule: '*/5 * * * *' }]).`,
  })),
  /** A task's `schedule` is not a five-field cron expression. */
  cronInvalid: errorFactory('OUTAGELESS_ERR_TASK_SCHEDULE', (file: string, component: string, task: string, schedule: string, problem: string) => ({
    message: `task "${task}" has an invalid schedule "${schedule}": ${problem}`,
    location: { file, component, step: task, field: 'schedule' },
    hint: 'Write a five-field cron expression: minute hour day-of-month month day-of-week, e.g. "*/5 * * * *" (every five minutes) or "0 3 * * 1" (Mondays at 03:00 UTC).',
  })),
  /** Two tasks of one component share a name. */
  duplicateTask: errorFactory('OUTAGELESS_ERR_DUPLICATE_TASK', (file: string, component: string, task: string) => ({
    message: `two tasks share the name "${task}"`,
    location: { file, component, step: task, field: 'name' },
    hint: 'Give every task of a component a distinct, stable name: it names the task\'s queue and its deferrals.',
  })),
  /** `db/tasks.ts` declares a task that the component's `index.ts` does not implement. */
  taskHandlerMissing: errorFactory('OUTAGELESS_ERR_TASK_HANDLER_MISSING', (file: string, component: string, task: string, runtimeFile: string) => ({
    message: `task "${task}" is declared in ${file} but ${runtimeFile} exports no handler for it`,
    location: { file: runtimeFile, component, step: task, field: `tasks.${task}` },
    hint: `Add to ${runtimeFile}: export const tasks = { ${task}: async (ctx) => { /* ... */ } }`,
  })),
  /** `db/events.ts` names a handler that the component's `index.ts` does not export. */
  observerHandlerMissing: errorFactory('OUTAGELESS_ERR_OBSERVER_HANDLER_MISSING', (file: string, component: string, event: string, handler: string, runtimeFile: string) => ({
    message: `the observer of "${event}" names handler "${handler}", but ${runtimeFile} exports no such observer`,
    location: { file: runtimeFile, component, field: `observers.${handler}` },
    hint: `Add to ${runtimeFile}: export const observers = { ${handler}: async (event, ctx) => { /* ... */ } }, or correct "handler" in ${file}.`,
  })),
  /** `runTask` / `fireTask` named a task the site's code does not declare. */
  unknownTask: errorFactory('OUTAGELESS_ERR_UNKNOWN_TASK', (component: string, task: string, known: readonly string[]) => ({
    message: `${component} has no scheduled task "${task}"${known.length > 0 ? ` (it has: ${known.join(', ')})` : ''}`,
    location: { component, step: task },
    hint: `Check the task name in the db/tasks.ts of ${component}.`,
  })),
  /** Jobs of a paused component were still running when the wait ran out. */
  stillActive: errorFactory('OUTAGELESS_ERR_JOBS_STILL_ACTIVE', (components: readonly string[], active: readonly { queue: string; count: number }[], timeoutMs: number) => ({
    message: `jobs of ${components.join(', ')} are still running after ${timeoutMs} ms: ${active.map((a) => `${a.queue} (${a.count})`).join(', ')}`,
    location: { component: components[0] },
    hint: 'Wait longer (a handler may be slow), or check for a front that died mid-job: pg-boss expires its job after the queue\'s expireInSeconds, and the wait then ends.',
  })),
} as const;
