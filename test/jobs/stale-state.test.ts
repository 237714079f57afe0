/**
 * The database, not a front's cached state, decides whether a job runs. A front that has not
 * heard of a pause yet (no NOTIFY, next poll far away) claims an event, finds the pause in the
 * database, and gives the event back untouched; a task it picks up is deferred. Nothing runs
 * while the component is paused, and nothing is lost or run twice.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { setComponentState } from '../../src/state/component-state.ts';
import { readDeferredTasks } from '../../src/jobs/deferred.ts';
import type { Jobs } from '../../src/jobs/runtime.ts';
import type { SiteDir } from '../support/sites.ts';
import { createJobsSite, installSite, memoryUrl, readLog, sleep, startApp, waitFor } from './site.ts';

let site: SiteDir;
let database: SiteDatabase;
let app: FastifyInstance & { jobs: Jobs };

beforeAll(async () => {
  site = await createJobsSite();
  database = await openDatabase(memoryUrl('stale'));
  await installSite(database, site.root);
  app = await startApp(database, site.root, { pollIntervalMs: 600_000 });
});

afterAll(async () => {
  await app?.close();
  await database?.close();
  await site?.cleanup();
});

it('a front with a stale state gives a claimed event back and defers a task; both run once after the resume', async () => {
  // A pause this front does not hear about: written without the NOTIFY setComponentState sends.
  await sql`insert into outageless_component_state (component, state) values ('mod_alpha', 'maintenance')`.execute(database.db);
  expect(app.outageless.state().componentStates.size).toBe(0);

  // A task it runs now is deferred: the deferral reads the pause from the database.
  expect(await app.jobs.runTask('mod_alpha', 'tick')).toBe('deferred');
  expect((await readDeferredTasks(database.db)).map((d) => d.task)).toEqual(['tick']);
  expect(app.outageless.state().componentStates.size).toBe(0);

  await app.jobs.emit('thing_happened', { seq: 1 });
  // The worker claims it, reads the pause from the database, gives it back, and catches up.
  await waitFor('the front to learn of the pause', () => app.outageless.state().componentStates.has('mod_alpha'));
  expect(await app.jobs.boss.findJobs('outageless.event.mod_alpha', { queued: true })).toHaveLength(1);
  expect(await readLog(database, { component: 'mod_alpha' })).toEqual([]);
  expect(await readLog(database, { component: 'mod_beta' })).toHaveLength(1);

  await setComponentState(database.db, 'mod_alpha', 'normal');
  await waitFor('the event and the deferred task', async () => (await readLog(database, { component: 'mod_alpha' })).length === 2);
  await sleep(500);
  const rows = await readLog(database, { component: 'mod_alpha' });
  expect(rows.map((r) => [r.kind, r.name, r.detail, r.seq]).sort()).toEqual([['event', 'thing_happened', null, 1], ['task', 'tick', 'deferred:1', null]]);
});
