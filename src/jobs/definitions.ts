import { join, relative } from 'node:path';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Component, SiteCode } from '../component/discover.ts';
import { importOptionalDbFile } from '../component/files.ts';
import { OutagelessError } from '../errors.ts';
import { jobErrors } from './errors.ts';

/**
 * The contract plugin authors write to for scheduled tasks and event observers.
 *
 * Definitions live in `db/` (they count towards the component's definitions hash, so adding
 * or rescheduling a task is an upgrade); handlers live in the component's runtime `index.ts`
 * as named exports, so changing what a handler does is a code-only change.
 *
 * ```ts
 * // plugins/mod/assign/db/tasks.ts
 * import { defineTasks } from 'outageless';
 * export default defineTasks([
 *   { name: 'send_due_reminders', schedule: '*\/5 * * * *', description: 'Remind students of due assignments' },
 * ]);
 *
 * // plugins/mod/assign/db/events.ts
 * import { defineObservers } from 'outageless';
 * export default defineObservers([{ event: 'course_created', handler: 'onCourseCreated' }]);
 *
 * // plugins/mod/assign/index.ts
 * import type { TaskHandlers, ObserverHandlers } from 'outageless';
 * export default async function routes(app) { ... }
 * export const tasks: TaskHandlers = {
 *   send_due_reminders: async (ctx) => { await ctx.db.selectFrom('assign').selectAll().execute(); },
 * };
 * export const observers: ObserverHandlers = {
 *   onCourseCreated: async (event, ctx) => { ctx.log.info({ course: event.payload }, 'course created'); },
 * };
 * ```
 */

/** One scheduled task of a component (an entry of the default export of `db/tasks.ts`). */
export interface TaskDefinition {
  /** Stable name, `[A-Za-z0-9_]+`; the key of its handler in `export const tasks` of `index.ts`. */
  readonly name: string;
  /**
   * Five-field cron expression (minute hour day-of-month month day-of-week), evaluated in
   * `timezone` (UTC by default). Runs on pg-boss's cron, once per occurrence across all fronts.
   */
  readonly schedule: string;
  readonly description?: string;
  /** IANA time zone the schedule is evaluated in (default `UTC`). */
  readonly timezone?: string;
}

/** One observer of a component (an entry of the default export of `db/events.ts`). */
export interface ObserverDefinition {
  /** The event name, as passed to `emit()`. */
  readonly event: string;
  /** Name of the handler in `export const observers` of the component's `index.ts`. */
  readonly handler: string;
}

export { defineTasks, defineObservers } from './define.ts';

/** The logger handlers get (pino's and Fastify's loggers fit). */
export interface JobsLogger {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
  child?(bindings: Record<string, unknown>): JobsLogger;
}

/** What every handler gets. */
export interface JobContext {
  /** The site database (Kysely). */
  readonly db: Kysely<any>;
  /** The component the handler belongs to. */
  readonly component: string;
  readonly log: JobsLogger;
}

export interface TaskContext extends JobContext {
  readonly task: string;
  /**
   * Why it runs: `cron` (its schedule came due), `deferred` (it came due while the component
   * was paused, and runs once now that it is back), or `manual` (`runTask`/`fireTask`).
   */
  readonly trigger: 'cron' | 'deferred' | 'manual';
  /** For `deferred`: how many times it came due while paused, and when first. */
  readonly deferred?: { readonly times: number; readonly firstDeferredAt: Date };
}

/** An event as an observer receives it. */
export interface EmittedEvent<Payload = unknown> {
  /** The pg-boss job id (stable across retries; one job per observing component). */
  readonly id: string;
  readonly name: string;
  readonly payload: Payload;
  readonly emittedAt: Date;
}

export type TaskHandler = (ctx: TaskContext) => unknown;
export type ObserverHandler = (event: EmittedEvent<any>, ctx: JobContext) => unknown;
/** Type of `export const tasks` in a component's `index.ts`. */
export type TaskHandlers = Readonly<Record<string, TaskHandler>>;
/** Type of `export const observers` in a component's `index.ts`. */
export type ObserverHandlers = Readonly<Record<string, ObserverHandler>>;

/** A component's runtime module (`index.ts`), as the front loaded it. */
export interface RuntimeModule {
  readonly default?: unknown;
  readonly tasks?: unknown;
  readonly observers?: unknown;
}

// ---------------------------------------------------------------------------------------
// Validation

const FIELD_RANGES = [
  { name: 'minute', min: 0, max: 59, names: [] as string[] },
  { name: 'hour', min: 0, max: 23, names: [] as string[] },
  { name: 'day of month', min: 1, max: 31, names: [] as string[] },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

/**
 * Checks a five-field cron expression; returns the problem, or undefined when it is valid.
 * Accepts `*`, numbers, names (`jan`, `mon`), ranges (`1-5`), lists (`1,15`) and steps
 * (`*\/5`, `10-50/10`).
 */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) return `has ${fields.length} field${fields.length === 1 ? '' : 's'}, expected 5 (minute hour day-of-month month day-of-week)`;
  for (const [index, field] of fields.entries()) {
    const range = FIELD_RANGES[index]!;
    const value = (text: string): number | undefined => {
      if (/^\d+$/.test(text)) return Number(text);
      const named = (range.names as readonly string[]).indexOf(text.toLowerCase());
      return named === -1 ? undefined : named + (range.name === 'month' ? 1 : 0);
    };
    for (const item of field.split(',')) {
      const [base = '', step, extra] = item.split('/');
      if (extra !== undefined || (step !== undefined && !/^[1-9]\d*$/.test(step))) return `${range.name} "${item}" has a bad step`;
      if (base === '*') continue;
      const bounds = base.split('-');
      if (bounds.length > 2) return `${range.name} "${item}" is not a value or a range`;
      const values = bounds.map(value);
      if (values.some((v) => v === undefined)) return `${range.name} "${item}" is not a value or a range`;
      if (values.some((v) => v! < range.min || v! > range.max)) return `${range.name} "${item}" is outside ${range.min}-${range.max}`;
      if (values.length === 2 && values[0]! > values[1]!) return `${range.name} range "${base}" runs backwards`;
    }
  }
  return undefined;
}

function timezoneProblem(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
    return undefined;
  } catch {
    return `unknown time zone "${timezone}"`;
  }
}

const taskSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_]+$/, 'must be a non-empty name of letters, digits and underscores'),
  schedule: z.string({ error: 'must be a cron expression string' }),
  description: z.string().optional(),
  timezone: z.string().optional(),
});
const tasksSchema = z.array(taskSchema, { error: 'default export must be an array of tasks (defineTasks([...]))' });

const observerSchema = z.object({
  event: z.string().min(1, 'must be a non-empty event name'),
  handler: z.string().regex(/^[A-Za-z_$][\w$]*$/, 'must be the name of an export in observers of index.ts'),
});
const observersSchema = z.array(observerSchema, { error: 'default export must be an array of observers (defineObservers([...]))' });

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`)).join('') || '(default export)';
}

function parse<T>(schema: z.ZodType<T>, value: unknown, file: string, component: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (value === undefined) throw jobErrors.definitionInvalid(file, component, 'default', 'file has no default export');
  throw jobErrors.definitionInvalid(file, component, fieldPath(issue.path), issue.message);
}

/** Validates the default export of a `db/tasks.ts`. */
export function validateTasks(file: string, component: string, value: unknown): readonly TaskDefinition[] {
  const tasks = parse(tasksSchema, value, file, component);
  const seen = new Set<string>();
  for (const task of tasks) {
    if (seen.has(task.name)) throw jobErrors.duplicateTask(file, component, task.name);
    seen.add(task.name);
    const problem = cronProblem(task.schedule);
    if (problem) throw jobErrors.cronInvalid(file, component, task.name, task.schedule, problem);
    const tzProblem = task.timezone === undefined ? undefined : timezoneProblem(task.timezone);
    if (tzProblem) throw jobErrors.definitionInvalid(file, component, `${task.name}.timezone`, tzProblem);
  }
  return tasks as readonly TaskDefinition[];
}

/** Validates the default export of a `db/events.ts`. */
export function validateObservers(file: string, component: string, value: unknown): readonly ObserverDefinition[] {
  return parse(observersSchema, value, file, component);
}

// ---------------------------------------------------------------------------------------
// A site's catalog of tasks and observers

export interface CatalogTask {
  readonly component: string;
  readonly definition: TaskDefinition;
  readonly handler: TaskHandler;
}

export interface CatalogObserver {
  readonly event: string;
  readonly handlerName: string;
  readonly handler: ObserverHandler;
}

export interface ComponentJobs {
  readonly component: Component;
  readonly tasks: ReadonlyMap<string, CatalogTask>;
  /** Event name to its handlers, in `db/events.ts` order. */
  readonly observers: ReadonlyMap<string, readonly CatalogObserver[]>;
  /** Events named by `db/events.ts`, even when a handler is missing (emits still queue them). */
  readonly observedEvents: ReadonlySet<string>;
  /**
   * What is wrong with the component's definitions or handlers (non-strict loading only).
   * A component with problems is left alone by the front: its queues are not worked and its
   * schedules are not touched; events emitted for it still queue, to be processed by a front
   * whose code is right.
   */
  readonly problems: readonly OutagelessError[];
}

/** Every component of a site that has tasks or observers, keyed by component. */
export type JobCatalog = ReadonlyMap<string, ComponentJobs>;

/**
 * Loads and validates every component's `db/tasks.ts` and `db/events.ts`, and resolves each
 * task and observer to its handler in the component's runtime module. A bad definition, a bad
 * cron expression or a missing handler is a typed error naming the file, component and task:
 * thrown (the default, `strict: true`), or with `strict: false` recorded in the component's
 * `problems` so the rest of the site keeps its tasks and observers.
 *
 * @example
 * ```ts
 * const catalog = await loadJobCatalog(code, modules)
 * catalog.get('mod_assign')?.tasks.get('send_due_reminders')?.definition.schedule // '*\/5 * * * *'
 * ```
 */
export async function loadJobCatalog(
  code: SiteCode,
  modules: ReadonlyMap<string, RuntimeModule>,
  options: { strict?: boolean } = {},
): Promise<JobCatalog> {
  const strict = options.strict ?? true;
  const catalog = new Map<string, ComponentJobs>();
  for (const component of code.components.values()) {
    const tasksFile = relative(code.root, join(component.dir, 'db', 'tasks.ts'));
    const eventsFile = relative(code.root, join(component.dir, 'db', 'events.ts'));
    const runtimeFile = relative(code.root, join(component.dir, 'index.ts'));
    const problems: OutagelessError[] = [];
    const attempt = async <T>(load: () => Promise<T> | T, fallback: T): Promise<T> => {
      try {
        return await load();
      } catch (error) {
        if (strict || !(error instanceof OutagelessError)) throw error;
        problems.push(error);
        return fallback;
      }
    };
    const definitions = await attempt(async () => {
      const raw = await importOptionalDbFile(code, component, 'tasks.ts');
      return raw === undefined ? [] : validateTasks(tasksFile, component.name, raw);
    }, [] as readonly TaskDefinition[]);
    const observerDefinitions = await attempt(async () => {
      const raw = await importOptionalDbFile(code, component, 'events.ts');
      return raw === undefined ? [] : validateObservers(eventsFile, component.name, raw);
    }, [] as readonly ObserverDefinition[]);
    if (definitions.length === 0 && observerDefinitions.length === 0 && problems.length === 0) continue;

    const module = modules.get(component.name);
    const taskHandlers = asRecord(module?.tasks);
    const observerHandlers = asRecord(module?.observers);
    const tasks = new Map<string, CatalogTask>();
    for (const definition of definitions) {
      const handler = taskHandlers[definition.name];
      if (typeof handler === 'function') tasks.set(definition.name, { component: component.name, definition, handler: handler as TaskHandler });
      else await attempt(() => { throw jobErrors.taskHandlerMissing(tasksFile, component.name, definition.name, runtimeFile); }, undefined);
    }
    const observers = new Map<string, CatalogObserver[]>();
    for (const { event, handler: handlerName } of observerDefinitions) {
      const handler = observerHandlers[handlerName];
      if (typeof handler !== 'function') {
        await attempt(() => { throw jobErrors.observerHandlerMissing(eventsFile, component.name, event, handlerName, runtimeFile); }, undefined);
        continue;
      }
      const list = observers.get(event) ?? [];
      list.push({ event, handlerName, handler: handler as ObserverHandler });
      observers.set(event, list);
    }
    const observedEvents = new Set(observerDefinitions.map((o) => o.event));
    catalog.set(component.name, { component, tasks, observers, observedEvents, problems });
  }
  return catalog;
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}
