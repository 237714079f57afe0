import { sql, type Kysely } from 'kysely';
import type { Db, Job, JobWithMetadata, PgBoss } from 'pg-boss';
import type { SiteCode } from '../component/discover.ts';
import type { SiteDatabase } from '../database/open.ts';
import type { Front } from '../runtime/front.ts';
import { decide } from '../runtime/guard.ts';
import { ensureStateTables } from '../state/tables.ts';
import type { OutagelessError } from '../errors.ts';
import { claimDeferrals, readPause, recordDeferral } from './deferred.ts';
import {
  loadJobCatalog, type CatalogTask, type EmittedEvent, type JobCatalog, type JobContext, type JobsLogger, type RuntimeModule, type TaskContext,
} from './definitions.ts';
import { jobErrors } from './errors.ts';
import { backendOf, kyselyExecutor, transactionExecutor } from './executor.ts';
import { monotonicUuid } from './ids.ts';
import { waitForInFlightJobs } from './in-flight.ts';
import { DEAD_EVENT_QUEUE, eventQueue, JOBS_CHANNEL, JOBS_SCHEMA, taskQueue, taskQueuePrefix } from './names.ts';
import { startBackgroundWorker, type BackgroundWorker, type BackgroundWorkerOptions } from '../migrations/engine.ts';

/**
 * Scheduled tasks and event observers on pg-boss, with per-component maintenance (DESIGN
 * §4.4, seed 001 steps 3–5 and 12). One pg-boss instance per front, in the schema
 * `outageless_boss` of the site database, on PostgreSQL and on PGlite alike (see executor.ts).
 *
 * Queues:
 * - `outageless.event.<component>`: the component's events, policy `key_strict_fifo` with the
 *   component as key: ONE job active at a time across all fronts, handed out in emission
 *   order, and a job being retried holds the ones behind it back, so order survives failures.
 * - `outageless.task.<component>.<task>`: one per task, scheduled with `boss.schedule` (cron),
 *   policy `exclusive`: a task never runs twice at once and never piles up behind itself.
 * - `outageless.dead.event`: events whose observer failed `eventAttempts` times (see below).
 *
 * A component is paused while it, or its parent for a subplugin, is in `maintenance` or in
 * `post-install` (front.state().componentStates). Post-install counts as paused too: admins
 * are still finishing its setup, so its background work waits, like its routes do for
 * non-admins. While paused:
 * - a task that comes due is NOT run: the deferral is recorded durably and the job completes;
 *   when the component is back, the task is enqueued ONCE (deferred.ts explains why exactly
 *   once with several fronts);
 * - its events are NOT fetched, so they stay queued in pg-boss, and when it is back they are
 *   processed in order. An event being processed when the pause starts finishes first:
 *   `drain()` / `waitForInFlightJobs()` wait for it.
 *
 * The cached state decides whether to fetch; the database decides whether to run. A worker
 * claims a job (it becomes `active`), THEN reads the pause from the database:
 * - paused: an event is given back untouched (cancel + resume in one transaction: it keeps its
 *   place in the queue and nothing ran); a task records its deferral;
 * - not paused: the handler runs. The pause had not committed when the worker read it, and the
 *   job was already active, so whoever pauses and then waits for active jobs waits for it.
 * So an event is never lost and never processed twice because of a pause, and nothing starts
 * after a pause has committed, however stale a front's cached state is.
 *
 * Delivery is at least once across crashes, as with any queue: a front killed mid-handler
 * leaves its job active until pg-boss expires it (the queue's `expireInSeconds`), and the
 * event is then processed again, in its place. Make observers idempotent.
 *
 * Other reasons a front does not work a component's jobs are local to that front and not
 * durable: the site in maintenance or under a maintenance-mode upgrade, this front's code
 * behind a breaking change, or ahead of the database with a pending change that needs
 * maintenance (the same rules as its routes, see runtime/guard.ts). Events then wait in the
 * queue for a front that may run them; tasks are deferred as above.
 */

export interface JobsOptions {
  readonly database: SiteDatabase;
  readonly code: SiteCode;
  /** Each component's runtime module (`index.ts`): handlers are its `tasks` and `observers` exports. */
  readonly modules: ReadonlyMap<string, RuntimeModule>;
  readonly front: Front;
  readonly log?: JobsLogger;
  /**
   * Fallback polling for events (default 5000 ms). Emits wake the workers at once: on this
   * front directly, on the others through a NOTIFY; polling covers a lost NOTIFY and retries.
   */
  readonly eventPollIntervalMs?: number;
  /** How often each task queue is polled (default 5000 ms, at least 500). */
  readonly taskPollIntervalMs?: number;
  /** Run pg-boss's cron on this front (default true; pg-boss makes one front fire each occurrence). */
  readonly schedule?: boolean;
  /**
   * Attempts of an event before it is moved to `outageless.dead.event` (default 5). Until
   * then it is retried with backoff and the component's later events wait behind it.
   */
  readonly eventAttempts?: number;
  /** Deferred tasks are replayed on every state change and also this often (default 30 000 ms). */
  readonly replayIntervalMs?: number;
  /**
   * Throw at start when a component's `db/tasks.ts`/`db/events.ts` is invalid or names a
   * handler its `index.ts` lacks (default false). Without it the front starts anyway, logs each
   * typed error, lists it in `jobs.problems`, and leaves that component's jobs alone (its
   * events still queue, for a front whose code is right): a front never refuses to serve the
   * site over one component's background work, which matters after the database was already
   * upgraded. Validate deployments beforehand with `loadJobCatalog(code, modules)` (strict).
   */
  readonly strict?: boolean;
  readonly onError?: (error: unknown) => void;
  /**
   * Batched background migrations (src/migrations): every front works them by default, one
   * batch at a time per migration across all fronts and workers. `false` leaves them to the
   * other fronts and to `outageless worker`; an object tunes the loop (poll, pauses, retries).
   */
  readonly background?: false | Pick<BackgroundWorkerOptions, 'pollIntervalMs' | 'pauseMs' | 'pressurePauseMs' | 'attempts' | 'retryBaseMs' | 'retryMaxMs'>;
}

export interface EmitOptions {
  /**
   * A transaction of the site database (Kysely) to enqueue in: the event is only delivered if
   * it commits (outbox). Without it, the event is enqueued in a transaction of its own.
   */
  readonly db?: Kysely<any>;
}

export interface EmitResult {
  readonly event: string;
  /** One job per observing component. */
  readonly jobs: readonly { readonly component: string; readonly id: string }[];
}

export type TaskRun = 'ran' | 'deferred';

/** The jobs runtime of one front. */
export interface Jobs {
  /** The pg-boss instance (schema `outageless_boss`), for background work of the framework. */
  readonly boss: PgBoss;
  /** The tasks and observers of the front's code. */
  readonly catalog: JobCatalog;
  /** Typed errors of components whose jobs this front leaves alone (non-strict start). */
  readonly problems: readonly OutagelessError[];
  /**
   * Enqueues `event` durably, one job per installed component that observes it (per this
   * front's code). `payload` must be JSON-serializable (a Date arrives as a string).
   */
  emit(event: string, payload?: unknown, options?: EmitOptions): Promise<EmitResult>;
  /**
   * Runs a task now, in this process, under the same rules as a scheduled run: when its
   * component is paused it is deferred instead. For tests and operators.
   */
  runTask(component: string, task: string): Promise<TaskRun>;
  /**
   * Enqueues a task as its schedule would when it comes due; a front's worker runs or defers
   * it. Returns the job id, or null when that task is already queued or running.
   */
  fireTask(component: string, task: string): Promise<string | null>;
  /**
   * Waits until no event or task of `component` (and its subplugins) runs on any front. Call it
   * right after pausing the component. Throws OUTAGELESS_ERR_JOBS_STILL_ACTIVE after
   * `timeoutMs` (default 30 000).
   */
  drain(component: string, timeoutMs?: number): Promise<void>;
  /** Enqueues deferred tasks whose component is back (also runs on every state change); returns how many. */
  replayDeferredTasks(): Promise<number>;
  /** Stops fetching, lets running handlers finish, and stops pg-boss. */
  close(): Promise<void>;
}

interface EventJobData {
  readonly event: string;
  readonly payload: unknown;
  readonly emittedAt: string;
}

interface TaskJobData {
  readonly trigger?: TaskContext['trigger'];
  readonly times?: number;
  readonly firstDeferredAt?: string;
}

const SILENT: JobsLogger = { debug() {}, info() {}, warn() {}, error() {} };
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

const EVENT_QUEUE_OPTIONS = {
  policy: 'key_strict_fifo',
  // pg-boss must never fail an event for good on its own (a failed job would block the queue):
  // the worker counts attempts and dead-letters (eventAttempts); expiries come back as retries.
  retryLimit: 1000,
  retryDelay: 1,
  retryBackoff: true,
  retryDelayMax: 300,
  expireInSeconds: 900,
} as const;

const TASK_QUEUE_OPTIONS = { policy: 'exclusive', retryLimit: 0, expireInSeconds: 3600 } as const;

function errorOutput(error: unknown): { message: string; stack?: string } {
  return error instanceof Error ? { message: error.message, ...(error.stack ? { stack: error.stack } : {}) } : { message: String(error) };
}

/**
 * Starts the jobs runtime of a front: validates the components' `db/tasks.ts` and
 * `db/events.ts` against their handlers (typed errors), starts pg-boss, creates the queues of
 * installed components, schedules their tasks, and works the queues.
 *
 * @example
 * ```ts
 * const jobs = await startJobs({ database, code, modules, front })
 * await jobs.emit('course_created', { courseId: 42 })
 * await jobs.close()
 * ```
 */
export async function startJobs(options: JobsOptions): Promise<Jobs> {
  const { database, code, front } = options;
  const db = database.db;
  const log = options.log ?? SILENT;
  const onError = (error: unknown) => {
    log.error({ err: error }, 'outageless jobs: background error');
    options.onError?.(error);
  };
  const eventPollMs = options.eventPollIntervalMs ?? 5000;
  const taskPollSeconds = Math.max(0.5, (options.taskPollIntervalMs ?? 5000) / 1000);
  const eventAttempts = Math.max(1, options.eventAttempts ?? 5);

  // Strict: bad definitions fail the start before anything touches the database.
  const catalog = await loadJobCatalog(code, options.modules, { strict: options.strict ?? false });
  const problems = [...catalog.values()].flatMap((jobs) => jobs.problems);
  for (const problem of problems) {
    log.error({ code: problem.code, ...problem.location }, `outageless jobs: ${problem.describe()}\n  (this front leaves the jobs of ${problem.location.component} alone)`);
  }
  const usable = (component: string) => catalog.get(component)?.problems.length === 0;
  await ensureStateTables(db);

  const pglite = backendOf(database) === 'pglite';
  // Loaded on demand: plugin files import 'outageless' for define*, and the CLI's planning
  // commands must not pay for pg-boss.
  const { PgBoss } = await import('pg-boss');
  const boss = new PgBoss({
    db: kyselyExecutor(db),
    schema: JOBS_SCHEMA,
    backend: backendOf(database),
    schedule: options.schedule ?? true,
    // Index rebuilds (REINDEX CONCURRENTLY) and vacuum monitoring are for server databases.
    ...(pglite ? { reindex: false, monitorVacuum: false } : {}),
  });
  boss.on('error', onError);
  boss.on('warning', (warning) => log.warn({ warning }, 'outageless jobs: pg-boss warning'));
  await boss.start();

  let closed = false;
  const contextLog = (bindings: Record<string, unknown>) => log.child?.(bindings) ?? log;
  const parentOf = (component: string) => code.components.get(component)?.parent;
  const subpluginsOf = (component: string) => [...code.components.values()].filter((c) => c.parent === component).map((c) => c.name);

  /**
   * Whether this front may run `component`'s jobs now, from its cached state: `run`, `paused`
   * (per-component maintenance: durable semantics) or `held` (a reason local to this front).
   */
  const availability = (component: string): 'run' | 'paused' | 'held' => {
    const verdict = decide(front.state(), front.view(), { kind: 'component', component, isAdmin: () => false });
    if (verdict.kind === 'serve') return 'run';
    return verdict.code === 'OUTAGELESS_COMPONENT_MAINTENANCE' ? 'paused' : 'held';
  };

  // pg-boss loads a queue it has not cached through its own executor. Inside a transaction on
  // PGlite that would wait for the transaction's connection forever, so every queue is loaded
  // once, outside any transaction, before it is used inside one.
  const warmQueue = (queue: string) => boss.findJobs(queue, { id: NIL_UUID }).then(() => undefined);

  // ---------------------------------------------------------------------------------------
  // Events

  interface EventWorker {
    readonly component: string;
    wake(): void;
    sleep(ms: number): Promise<void>;
    loop?: Promise<void>;
  }
  const eventWorkers = new Map<string, EventWorker>();

  const makeWorker = (component: string): EventWorker => {
    let pending = false;
    let resolveSleep: (() => void) | undefined;
    return {
      component,
      wake() {
        pending = true;
        resolveSleep?.();
      },
      sleep(ms) {
        if (pending || closed) {
          pending = false;
          return Promise.resolve();
        }
        return new Promise<void>((resolve) => {
          const timer = setTimeout(done, ms);
          function done() {
            clearTimeout(timer);
            resolveSleep = undefined;
            pending = false;
            resolve();
          }
          resolveSleep = done;
        });
      },
    };
  };

  const wakeAll = () => {
    for (const worker of eventWorkers.values()) worker.wake();
  };

  /** Gives a claimed event back untouched: it keeps its place (created_on, id) in the queue. */
  const release = async (queue: string, job: Job<EventJobData>) => {
    await db.transaction().execute(async (trx) => {
      const exec = transactionExecutor(trx);
      await boss.cancel(queue, { id: job.id, retryCount: job.retryCount }, { db: exec });
      await boss.resume(queue, job.id, { db: exec });
    });
  };

  const processEvent = async (component: string, job: JobWithMetadata<EventJobData>): Promise<'released' | 'done'> => {
    const queue = eventQueue(component);
    const pause = await readPause(db, component, parentOf(component));
    if (pause || availability(component) === 'held') {
      await release(queue, job);
      log.debug({ component, job: job.id }, 'outageless jobs: event given back, the component is paused');
      return 'released';
    }
    const data = job.data;
    const handlers = catalog.get(component)?.observers.get(data.event) ?? [];
    const event: EmittedEvent = { id: job.id, name: data.event, payload: data.payload, emittedAt: new Date(data.emittedAt) };
    const ctx: JobContext = { db, component, log: contextLog({ component, event: data.event }) };
    try {
      for (const observer of handlers) await observer.handler(event, ctx);
    } catch (error) {
      // Counted in the job's output, not from pg-boss's retryCount, which also counts claims
      // given back during a pause and expiries.
      const previous = (job.output as { failures?: unknown } | null)?.failures;
      const attempt = (typeof previous === 'number' ? previous : 0) + 1;
      if (attempt >= eventAttempts) {
        log.error({ err: error, component, event: data.event, job: job.id, attempt }, 'outageless jobs: observer failed for the last time; the event moves to the dead-letter queue');
        await db.transaction().execute(async (trx) => {
          const exec = transactionExecutor(trx);
          await boss.send(DEAD_EVENT_QUEUE, { component, queue, jobId: job.id, ...data, attempts: attempt, error: errorOutput(error) }, { db: exec });
          await boss.complete(queue, job, { deadLettered: true, error: errorOutput(error) }, { db: exec });
        });
      } else {
        log.warn({ err: error, component, event: data.event, job: job.id, attempt }, 'outageless jobs: observer failed; retrying (later events of the component wait)');
        await boss.fail(queue, job, { ...errorOutput(error), failures: attempt });
      }
      return 'done';
    }
    // An event this front's code does not observe (another release emitted it) completes as such.
    await boss.complete(queue, job, handlers.length === 0 ? { skipped: 'not observed by this front\'s code' } : null);
    return 'done';
  };

  const eventLoop = async (worker: EventWorker) => {
    const queue = eventQueue(worker.component);
    while (!closed) {
      if (availability(worker.component) !== 'run') {
        await worker.sleep(eventPollMs);
        continue;
      }
      let job: JobWithMetadata<EventJobData> | undefined;
      try {
        [job] = await boss.fetch<EventJobData>(queue, { batchSize: 1, includeMetadata: true });
      } catch (error) {
        if (!closed) onError(error);
      }
      if (!job) {
        await worker.sleep(eventPollMs);
        continue;
      }
      try {
        if ((await processEvent(worker.component, job)) === 'released') {
          // This front's cached state is behind the database: catch up before fetching again.
          await front.refresh();
          await worker.sleep(eventPollMs);
        }
      } catch (error) {
        // The job stays active and pg-boss expires it back into the queue: late, never lost.
        onError(error);
        await worker.sleep(eventPollMs);
      }
    }
  };

  // ---------------------------------------------------------------------------------------
  // Tasks

  const taskFor = (component: string, task: string): CatalogTask => {
    const jobs = catalog.get(component);
    if (jobs && jobs.problems.length > 0) throw jobs.problems[0]!;
    const entry = jobs?.tasks.get(task);
    if (!entry) throw jobErrors.unknownTask(component, task, [...(catalog.get(component)?.tasks.keys() ?? [])]);
    return entry;
  };

  const runTaskJob = async (entry: CatalogTask, data: TaskJobData): Promise<TaskRun> => {
    const { component } = entry;
    const task = entry.definition.name;
    const parent = parentOf(component);
    const deferred = await db.transaction().execute(async (trx) => {
      // FOR SHARE: a resume (deleting the state row) waits for this deferral to commit.
      const pause = await readPause(trx, component, parent, { forShare: true });
      if (!pause && availability(component) === 'run') return false;
      await recordDeferral(trx, component, task, parent, data.times ?? 1);
      return true;
    });
    if (deferred) {
      log.info({ component, task }, 'outageless jobs: task deferred until the component is back');
      return 'deferred';
    }
    const trigger = data.trigger ?? 'cron';
    const ctx: TaskContext = {
      db, component, task, trigger, log: contextLog({ component, task }),
      ...(trigger === 'deferred' ? { deferred: { times: data.times ?? 1, firstDeferredAt: new Date(data.firstDeferredAt ?? Date.now()) } } : {}),
    };
    await entry.handler(ctx);
    return 'ran';
  };

  const replayDeferredTasks = async (): Promise<number> => {
    if (closed) return 0;
    const keys: string[] = [];
    for (const [component, jobs] of catalog) {
      if (!working.has(component) || availability(component) !== 'run') continue;
      for (const task of jobs.tasks.keys()) keys.push(`${component}/${task}`);
    }
    if (keys.length === 0) return 0;
    const claimed = await db.transaction().execute(async (trx) => {
      const rows = await claimDeferrals(trx, keys);
      const exec = transactionExecutor(trx);
      for (const row of rows) {
        // null when the task is already queued or running: that run covers the deferral.
        await boss.send(taskQueue(row.component, row.task), { trigger: 'deferred', times: row.times, firstDeferredAt: row.firstDeferredAt.toISOString() }, { db: exec });
      }
      return rows;
    });
    for (const row of claimed) log.info({ component: row.component, task: row.task, times: row.times }, 'outageless jobs: deferred task enqueued');
    return claimed.length;
  };

  // ---------------------------------------------------------------------------------------
  // Setup per installed component, and schedules

  /** Components whose event queue exists (emits may target them). */
  const ready = new Set<string>();
  /** Components whose queues this front works (set up, and no problems). */
  const working = new Set<string>();
  /** Per component, the installed version + definitions hash its schedules were synced for. */
  const scheduledFor = new Map<string, string>();

  const setUp = async (component: string) => {
    const jobs = catalog.get(component)!;
    if (jobs.observedEvents.size > 0) {
      await boss.createQueue(eventQueue(component), EVENT_QUEUE_OPTIONS);
      await warmQueue(eventQueue(component));
    }
    ready.add(component);
    if (!usable(component)) return;
    for (const [name, entry] of jobs.tasks) {
      const queue = taskQueue(component, name);
      await boss.createQueue(queue, TASK_QUEUE_OPTIONS);
      await warmQueue(queue);
      await boss.work<TaskJobData>(queue, { batchSize: 1, pollingIntervalSeconds: taskPollSeconds }, async ([job]) => {
        if (!job) return;
        try {
          await runTaskJob(entry, job.data ?? {});
        } catch (error) {
          log.error({ err: error, component, task: name }, 'outageless jobs: task failed');
          throw error;
        }
      });
    }
    working.add(component);
    if (jobs.observers.size > 0) {
      const worker = makeWorker(component);
      eventWorkers.set(component, worker);
      worker.loop = eventLoop(worker);
    }
  };

  const syncSchedules = async () => {
    const state = front.state();
    const view = front.view();
    const due: string[] = [];
    for (const [component, componentView] of view.components) {
      // Schedules follow the installed definitions: only a front whose code IS the installed
      // version of the component writes them (older and newer fronts leave them alone).
      const installed = state.installed?.get(component);
      if (componentView.relation !== 'current' || !installed) continue;
      // A component with problems keeps the schedules a correct front wrote.
      if (catalog.has(component) && !usable(component)) continue;
      const signature = `${installed.version}:${installed.definitionsHash}`;
      if (scheduledFor.get(component) !== signature) due.push(component);
    }
    if (due.length === 0) return;
    const existing = await boss.getSchedules();
    for (const component of due) {
      const installed = state.installed!.get(component)!;
      const tasks = [...(catalog.get(component)?.tasks.values() ?? [])];
      const wanted = new Set(tasks.map((t) => taskQueue(component, t.definition.name)));
      for (const { definition } of tasks) {
        await boss.schedule(taskQueue(component, definition.name), definition.schedule, { trigger: 'cron' }, { tz: definition.timezone ?? 'UTC', missed: 'once' });
      }
      for (const schedule of existing) {
        if (schedule.name.startsWith(taskQueuePrefix(component)) && !wanted.has(schedule.name)) await boss.unschedule(schedule.name, schedule.key);
      }
      scheduledFor.set(component, `${installed.version}:${installed.definitionsHash}`);
    }
  };

  const sync = async () => {
    if (closed) return;
    const installed = front.state().installed;
    for (const component of catalog.keys()) {
      if (!ready.has(component) && installed?.has(component)) await setUp(component);
    }
    await syncSchedules();
  };

  // Every sync and replay runs one after the other.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(work);
    chain = next.catch(() => {});
    return next;
  };

  try {
    await boss.createQueue(DEAD_EVENT_QUEUE, { retentionSeconds: 60 * 60 * 24 * 30 });
    await warmQueue(DEAD_EVENT_QUEUE);
    await serial(sync);
  } catch (error) {
    closed = true;
    wakeAll();
    await Promise.all([...eventWorkers.values()].map((w) => w.loop));
    await boss.stop({ graceful: false, timeout: 1000 }).catch(() => {});
    throw error;
  }

  const unlisten = await database.listen(JOBS_CHANNEL, (component) => eventWorkers.get(component)?.wake());
  const stopWatching = front.onChange(() => {
    wakeAll();
    void serial(async () => {
      await sync();
      await replayDeferredTasks();
    }).catch(onError);
  });
  // Background migrations are worked by polling their table, not through a pg-boss queue:
  // the row in outageless_background_migration already is the queue (state, cursor, backoff)
  // and its lock (FOR UPDATE SKIP LOCKED in each batch's transaction). A pg-boss job per batch
  // or per migration would be a second copy of that state, which a kill between the two
  // commits would let disagree (an expired job retried over a committed cursor), and its
  // singleton policies cannot hold a batch's exclusivity inside the batch's own transaction.
  // Queueing, resume and retry NOTIFY, so fronts start at once; the poll covers a lost NOTIFY.
  // Each batch passes this front's guard: not while its component is paused, the site is in
  // maintenance, or this front's code is behind (the same rules as its routes and events).
  const background: BackgroundWorker | undefined = options.background === false
    ? undefined
    : startBackgroundWorker({
      ...options.background,
      database,
      code,
      log,
      mayRun: (component) => !closed && availability(component) === 'run',
    });
  const replayTimer = setInterval(() => void serial(replayDeferredTasks).catch(onError), options.replayIntervalMs ?? 30_000);
  replayTimer.unref();
  await serial(replayDeferredTasks).catch(onError);

  const send = async (exec: Db, trx: Kysely<any>, event: string, payload: unknown, targets: readonly string[]) => {
    const emittedAt = new Date().toISOString();
    const jobs: { component: string; id: string }[] = [];
    for (const component of targets) {
      const id = monotonicUuid();
      await boss.send(eventQueue(component), { event, payload: payload ?? null, emittedAt }, { id, singletonKey: component, db: exec });
      jobs.push({ component, id });
    }
    // Wakes the other fronts' workers when the transaction commits.
    await sql`select pg_notify(${JOBS_CHANNEL}, t) from unnest(${[...targets]}::text[]) as t`.execute(trx);
    return jobs;
  };

  return {
    boss,
    catalog,
    problems,
    async emit(event, payload, emitOptions = {}) {
      const installed = front.state().installed;
      const targets = [...catalog.values()]
        .filter((jobs) => jobs.observedEvents.has(event) && ready.has(jobs.component.name) && installed?.has(jobs.component.name))
        .map((jobs) => jobs.component.name);
      if (targets.length === 0) return { event, jobs: [] };
      if (emitOptions.db) {
        const jobs = await send(transactionExecutor(emitOptions.db), emitOptions.db, event, payload, targets);
        return { event, jobs };
      }
      const jobs = await db.transaction().execute((trx) => send(transactionExecutor(trx), trx, event, payload, targets));
      for (const component of targets) eventWorkers.get(component)?.wake();
      return { event, jobs };
    },
    async runTask(component, task) {
      return runTaskJob(taskFor(component, task), { trigger: 'manual' });
    },
    async fireTask(component, task) {
      taskFor(component, task);
      return boss.send(taskQueue(component, task), { trigger: 'manual' });
    },
    drain(component, timeoutMs = 30_000) {
      return waitForInFlightJobs(database, [component, ...subpluginsOf(component)], { timeoutMs, pollMs: 50 });
    },
    replayDeferredTasks: () => serial(replayDeferredTasks),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(replayTimer);
      stopWatching();
      wakeAll();
      // The batch in flight commits first; none starts after.
      await background?.stop();
      await Promise.all([...eventWorkers.values()].map((w) => w.loop));
      await chain;
      await unlisten().catch(() => {});
      await boss.stop({ graceful: true, timeout: 10_000 });
    },
  };
}
