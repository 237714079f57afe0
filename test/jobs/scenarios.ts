/**
 * The per-component maintenance scenarios of tasks and events (DESIGN §4.4, seed 001), run by
 * pglite.test.ts and postgres.test.ts against two fronts (two Fastify apps) on one database.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { setComponentState } from '../../src/state/component-state.ts';
import { readDeferredTasks } from '../../src/jobs/deferred.ts';
import { readInFlightJobs, waitForInFlightEvents } from '../../src/jobs/in-flight.ts';
import { DEAD_EVENT_QUEUE } from '../../src/jobs/names.ts';
import { isOutagelessError } from '../../src/errors.ts';
import type { Jobs } from '../../src/jobs/runtime.ts';
import type { SiteDir } from '../support/sites.ts';
import { clearLog, createJobsSite, installSite, jobsTestHooks, readLog, resetGate, sleep, startApp, waitFor } from './site.ts';

type App = FastifyInstance & { jobs: Jobs };

export interface Backend {
  /** A database URL for the file; `cleanup` drops it. */
  open(): Promise<{ url: string; cleanup(): Promise<void> }>;
}

export function jobsScenarios(backend: Backend): void {
  let site: SiteDir;
  let cleanup: () => Promise<void>;
  let url: string;
  // Each front opens the site database itself, as separate processes would.
  const databases: SiteDatabase[] = [];
  let database: SiteDatabase;
  let a: App;
  let b: App;

  const seeState = async (component: string, state: 'maintenance' | 'post-install' | 'normal') => {
    await setComponentState(database.db, component, state);
    for (const app of [a, b]) {
      await app.outageless.refresh();
      const current = app.outageless.state().componentStates.get(component)?.state ?? 'normal';
      expect(current).toBe(state);
    }
  };

  beforeAll(async () => {
    site = await createJobsSite();
    ({ url, cleanup } = await backend.open());
    database = await openDatabase(url);
    databases.push(database);
    await installSite(database, site.root);
    const dbA = await openDatabase(url);
    const dbB = await openDatabase(url);
    databases.push(dbA, dbB);
    [a, b] = await Promise.all([startApp(dbA, site.root), startApp(dbB, site.root)]);
  });

  afterAll(async () => {
    jobsTestHooks().open();
    await Promise.all([a?.close(), b?.close()]);
    for (const db of databases.reverse()) await db.close();
    await cleanup?.();
    await site?.cleanup();
  });

  it('runs a task on demand and schedules every task on pg-boss cron', async () => {
    await clearLog(database);
    expect(await a.jobs.runTask('mod_alpha', 'tick')).toBe('ran');
    expect(await readLog(database, { name: 'tick' })).toEqual([expect.objectContaining({ component: 'mod_alpha', detail: 'manual' })]);

    // Fired as its schedule would fire it: one of the fronts' workers runs it.
    expect(await b.jobs.fireTask('alphasub_x', 'subtick')).toEqual(expect.any(String));
    await waitFor('the fired subtick', async () => (await readLog(database, { name: 'subtick' })).length === 1);

    const schedules = (await a.jobs.boss.getSchedules()).map((s) => [s.name, s.cron]);
    expect(schedules).toEqual(expect.arrayContaining([
      ['outageless.task.mod_alpha.tick', '*/5 * * * *'],
      ['outageless.task.alphasub_x.subtick', '0 * * * *'],
    ]));

    // Unknown tasks are typed errors.
    await expect(a.jobs.runTask('mod_alpha', 'nope')).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_UNKNOWN_TASK' });
  });

  it('defers due tasks while the component is paused and runs each exactly once after, with two fronts', async () => {
    await clearLog(database);
    await seeState('mod_alpha', 'maintenance');

    // Comes due three times (twice on the queue, once run by hand): never runs.
    expect(await a.jobs.fireTask('mod_alpha', 'tick')).toEqual(expect.any(String));
    await waitFor('the first deferral', async () => (await readDeferredTasks(database.db)).some((d) => d.task === 'tick'));
    expect(await b.jobs.fireTask('mod_alpha', 'tick')).toEqual(expect.any(String));
    await waitFor('the second deferral', async () => (await readDeferredTasks(database.db)).find((d) => d.task === 'tick')?.times === 2);
    expect(await b.jobs.runTask('mod_alpha', 'tick')).toBe('deferred');
    // The subplugin's task pauses with its parent.
    expect(await a.jobs.runTask('alphasub_x', 'subtick')).toBe('deferred');

    // Post-install still holds them (admins are finishing the setup).
    await seeState('mod_alpha', 'post-install');
    expect(await a.jobs.replayDeferredTasks()).toBe(0);
    expect(await b.jobs.replayDeferredTasks()).toBe(0);
    await sleep(300);
    expect(await readLog(database, { kind: 'task' })).toEqual([]);
    const deferred = await readDeferredTasks(database.db);
    expect(deferred.map((d) => [d.component, d.task, d.times])).toEqual(expect.arrayContaining([['mod_alpha', 'tick', 3], ['alphasub_x', 'subtick', 1]]));

    // Back to normal: both fronts see it and race to replay; each task runs once.
    await setComponentState(database.db, 'mod_alpha', 'normal');
    await Promise.all([a.jobs.replayDeferredTasks(), b.jobs.replayDeferredTasks(), a.outageless.refresh(), b.outageless.refresh()]);
    await waitFor('the deferred runs', async () => (await readLog(database, { kind: 'task' })).length === 2);
    await sleep(1500); // several poll, replay and refresh rounds of both fronts
    const runs = await readLog(database, { kind: 'task' });
    expect(runs.map((r) => [r.component, r.name, r.detail]).sort()).toEqual([
      ['alphasub_x', 'subtick', 'deferred'],
      ['mod_alpha', 'tick', 'deferred:3'],
    ]);
    expect(await readDeferredTasks(database.db)).toEqual([]);
  });

  it('keeps events queued while the component is paused and replays them in emission order; other components keep flowing', async () => {
    await clearLog(database);
    await seeState('mod_alpha', 'maintenance');

    for (let seq = 1; seq <= 12; seq++) {
      const result = await (seq % 2 === 0 ? b : a).jobs.emit('thing_happened', { seq });
      expect(result.jobs.map((j) => j.component).sort()).toEqual(['mod_alpha', 'mod_beta']);
    }
    // mod_beta processes all of them meanwhile; mod_alpha none.
    await waitFor('mod_beta to process its events', async () => (await readLog(database, { component: 'mod_beta' })).length === 12);
    await sleep(500);
    expect(await readLog(database, { component: 'mod_alpha' })).toEqual([]);
    const queued = await a.jobs.boss.findJobs('outageless.event.mod_alpha', { queued: true });
    expect(queued).toHaveLength(12);

    await seeState('mod_alpha', 'normal');
    await waitFor('mod_alpha to replay its events', async () => (await readLog(database, { component: 'mod_alpha' })).length === 12);
    await sleep(300);
    const replayed = await readLog(database, { component: 'mod_alpha' });
    expect(replayed.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('lets an event being processed when the pause starts finish first (drain waits for it), and holds the rest', async () => {
    await clearLog(database);
    resetGate();
    const hooks = jobsTestHooks();
    const started = hooks.slowStarted;
    await a.jobs.emit('slow_thing', { seq: 1 });
    await waitFor('the slow observer to start', () => hooks.slowStarted === started + 1);

    await seeState('mod_alpha', 'maintenance');
    await b.jobs.emit('thing_happened', { seq: 2 });
    let drained = false;
    const drain = b.jobs.drain('mod_alpha', 10_000).then(() => (drained = true));
    await sleep(400);
    expect(drained).toBe(false);
    expect(await readInFlightJobs(database.db, ['mod_alpha'])).toEqual([{ queue: 'outageless.event.mod_alpha', count: 1 }]);
    // What the CLI uses, without a pg-boss worker: a short wait reports the running event.
    const error = await waitForInFlightEvents(database, 'mod_alpha', 100).catch((e: unknown) => e);
    expect(isOutagelessError(error, 'OUTAGELESS_ERR_JOBS_STILL_ACTIVE')).toBe(true);

    hooks.open();
    await drain;
    expect(await readLog(database, { component: 'mod_alpha' })).toEqual([expect.objectContaining({ name: 'slow_thing', detail: 'finished', seq: 1 })]);
    await waitForInFlightEvents(database, 'mod_alpha', 1000);

    // The event emitted during the pause waits; it is processed once the component is back.
    await sleep(400);
    expect((await readLog(database, { component: 'mod_alpha' })).map((r) => r.seq)).toEqual([1]);
    await seeState('mod_alpha', 'normal');
    await waitFor('the held event', async () => (await readLog(database, { component: 'mod_alpha' })).length === 2);
    expect((await readLog(database, { component: 'mod_alpha' })).map((r) => r.seq)).toEqual([1, 2]);
    expect(await readLog(database, { component: 'mod_beta' })).toEqual([expect.objectContaining({ seq: 2 })]);
  });

  it('retries a failing observer in place (later events wait), then moves the event to the dead-letter queue', async () => {
    await clearLog(database);
    const hooks = jobsTestHooks();
    const beta = () => readLog(database, { component: 'mod_beta' });

    // Fails once, succeeds on the retry: the event emitted after it still comes second.
    hooks.flakyFailures = 1;
    await a.jobs.emit('flaky_thing', { seq: 1 });
    await b.jobs.emit('thing_happened', { seq: 2 });
    await waitFor('the retried event and the one behind it', async () => (await beta()).length === 2);
    expect((await beta()).map((r) => r.seq)).toEqual([1, 2]);

    // Fails every attempt (eventAttempts: 2): dead-lettered, and the line moves on.
    hooks.flakyFailures = 2;
    await a.jobs.emit('flaky_thing', { seq: 3 });
    await a.jobs.emit('thing_happened', { seq: 4 });
    await waitFor('the event behind the dead one', async () => (await beta()).length === 3);
    expect((await beta()).map((r) => r.seq)).toEqual([1, 2, 4]);
    const dead = await a.jobs.boss.findJobs<{ component: string; event: string; payload: { seq: number }; attempts: number; error: { message: string } }>(DEAD_EVENT_QUEUE, { queued: true });
    expect(dead.map((job) => job.data)).toEqual([
      expect.objectContaining({ component: 'mod_beta', event: 'flaky_thing', payload: { seq: 3 }, attempts: 2, error: expect.objectContaining({ message: 'flaky observer failed' }) }),
    ]);
  });

  it('enqueues an event in the caller\'s transaction: delivered only if it commits', async () => {
    await clearLog(database);
    await database.db.transaction().execute(async (trx) => {
      await a.jobs.emit('thing_happened', { seq: 100 }, { db: trx });
    });
    const rolledBack = await database.db.transaction().execute(async (trx) => {
      await a.jobs.emit('thing_happened', { seq: 101 }, { db: trx });
      throw new Error('roll back');
    }).catch((error: unknown) => error);
    expect(rolledBack).toBeInstanceOf(Error);
    await waitFor('the committed event', async () => (await readLog(database, { component: 'mod_beta' })).length === 1);
    await sleep(500);
    expect((await readLog(database, { component: 'mod_beta' })).map((r) => r.seq)).toEqual([100]);
    expect((await readLog(database, { component: 'mod_alpha' })).map((r) => r.seq)).toEqual([100]);
  });
}
