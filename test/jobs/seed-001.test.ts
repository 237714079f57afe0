/**
 * Seed 001 (Michael Hughes' 14 steps) end to end on PostgreSQL: the example site, two real
 * `outageless serve` processes, the CLI for every operator action, and mod_assign paused on
 * its own while the rest of the site serves.
 *
 * The site starts as release 3 plus the operator-side part of release 4 that mod_assign
 * needs to be paused before its code is replaced: `maintenance: { disableable: true }` in its
 * version.ts (not in db/, so no db/ hash change), its db/events.ts and index.ts observers,
 * and core's index.ts route that emits `course_viewed` (code only). Release 3 alone cannot
 * run steps 1-6: its mod_assign is not disableable and observes no event.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { readComponentStates } from '../../src/state/component-state.ts';
import { readDeferredTasks } from '../../src/jobs/deferred.ts';
import { readInFlightJobs } from '../../src/jobs/in-flight.ts';
import { eventQueue, JOBS_SCHEMA, taskQueue } from '../../src/jobs/names.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { startFront, type FrontProcess } from '../support/fronts.ts';
import { cli, createSiteDir, RELEASES, type SiteDir } from '../support/sites.ts';
import { sleep, waitFor } from './site.ts';
import { sql } from 'kysely';

const SECRET = 'seed-001-admin-secret';
const TASK_QUEUE = taskQueue('mod_assign', 'send_due_reminders');

interface Answer { status: number; body: string }

async function get(url: string, cookie?: string): Promise<Answer> {
  const response = await fetch(url, { headers: { accept: 'application/json', ...(cookie ? { cookie } : {}) }, redirect: 'manual' });
  return { status: response.status, body: await response.text() };
}

/** Logs in on a front's /admin/login with the secret; returns the Cookie header to send. */
async function adminLogin(front: FrontProcess): Promise<string> {
  const page = await fetch(`${front.url}/admin/login`);
  const html = await page.text();
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error('no CSRF token on the login page');
  const jar = new Map<string, string>();
  const keep = (response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair!.indexOf('=');
      jar.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
  };
  keep(page);
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const login = await fetch(`${front.url}/admin/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie() },
    body: new URLSearchParams({ _csrf: token, password: SECRET, next: '/admin' }).toString(),
  });
  await login.arrayBuffer();
  if (login.status !== 303) throw new Error(`admin login answered ${login.status}`);
  keep(login);
  if (!jar.has('outageless_admin')) throw new Error('admin login set no session cookie');
  return `outageless_admin=${jar.get('outageless_admin')}`;
}

/** Emits `course_viewed` through core's route on a front. */
async function viewCourse(front: FrontProcess, courseId: number, seq: number): Promise<unknown> {
  const response = await fetch(`${front.url}/course/${courseId}/view`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ seq }),
  });
  expect(response.status).toBe(200);
  return response.json();
}

describe.skipIf(!postgresAvailable)('seed 001: one plugin in maintenance while the site serves (two fronts, PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  let fronts: FrontProcess[] = [];
  let adminCookie: string;

  const siteArgs = () => ['--root', site.root, '--database', scratch.url];
  const start = async () => {
    fronts = await Promise.all([0, 1].map(() => startFront({ root: site.root, database: scratch.url, env: { OUTAGELESS_ADMIN_SECRET: SECRET } })));
  };
  const stop = async () => {
    const results = await Promise.all(fronts.map((front) => front.stop()));
    fronts = [];
    for (const result of results) expect(result.code).toBe(0);
  };
  const eventLog = async () =>
    (await sql<{ seq: number; courseid: string }>`select seq, courseid from assign_event_log order by id`.execute(database.db)).rows;
  const taskJobs = async () =>
    (await sql<{ state: string; trigger: string | null }>`select state, data->>'trigger' as trigger from ${sql.ref(`${JOBS_SCHEMA}.job`)} where name = ${TASK_QUEUE} order by created_on`.execute(database.db)).rows;
  const queuedEvents = async () =>
    (await sql<{ seq: number }>`select (data->'payload'->>'seq')::int as seq from ${sql.ref(`${JOBS_SCHEMA}.job`)} where name = ${eventQueue('mod_assign')} and state in ('created', 'retry') order by id`.execute(database.db)).rows.map((r) => r.seq);
  const stateOf = async (component: string) => (await readComponentStates(database.db)).get(component)?.state ?? 'normal';

  beforeAll(async () => {
    scratch = await createScratchDatabase('seed001');
    site = await createSiteDir(3);
    const r4 = join(RELEASES, '4');
    await site.edit('plugins/mod/assign/version.ts', (text) =>
      text.replace("subplugins: { assignsubmission: 'submission' },", "subplugins: { assignsubmission: 'submission' },\n  maintenance: { disableable: true },"));
    for (const file of ['plugins/mod/assign/db/events.ts', 'plugins/mod/assign/index.ts', 'core/index.ts']) await copyFile(join(r4, file), join(site.root, file));
    const install = await cli(['upgrade', ...siteArgs(), '--non-interactive']);
    expect(install.code, install.stdout + install.stderr).toBe(0);
    database = await openDatabase(scratch.url);
    await start();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(fronts.map((front) => front.stop()));
    await database?.close();
    await scratch?.drop();
    await site?.cleanup();
  });

  it('steps 1-2: `maintenance enable --component mod_assign` pauses only mod_assign: its routes answer 503 naming it on both fronts, the rest answers 200', async () => {
    for (const front of fronts) expect((await get(`${front.url}/mod_assign/`)).status).toBe(200);
    const enable = await cli(['maintenance', 'enable', '--component', 'mod_assign', ...siteArgs()]);
    expect(enable.code, enable.stdout + enable.stderr).toBe(0);
    expect(await stateOf('mod_assign')).toBe('maintenance');

    for (const front of fronts) {
      await waitFor(`503 on ${front.url}`, async () => (await get(`${front.url}/mod_assign/`)).status === 503, 5000);
      for (const path of ['/mod_assign/', '/mod_assign/capabilities', '/mod_assign/submission-types']) {
        const answer = await get(`${front.url}${path}`);
        expect(answer.status).toBe(503);
        expect(JSON.parse(answer.body).error).toMatchObject({ code: 'OUTAGELESS_COMPONENT_MAINTENANCE', component: 'mod_assign' });
      }
      for (const path of ['/', '/mod_quiz/', '/block_news/', '/local_reports/', '/auth_manual/']) {
        expect((await get(`${front.url}${path}`)).status, path).toBe(200);
      }
    }
  });

  it('step 3: a task of mod_assign that comes due while it is paused is deferred, not run', async () => {
    // Fire it as its cron schedule would: a job on its pg-boss queue, picked up by a front's worker.
    await sql`insert into ${sql.ref(`${JOBS_SCHEMA}.job`)} (name, data) values (${TASK_QUEUE}, ${JSON.stringify({ trigger: 'cron' })}::jsonb)`.execute(database.db);
    await waitFor('the deferral', async () => (await readDeferredTasks(database.db)).some((d) => d.component === 'mod_assign' && d.task === 'send_due_reminders'), 15_000);
    // The worker records the deferral and then completes the job: wait for both.
    await waitFor('the deferred job to complete', async () => (await readInFlightJobs(database.db, ['mod_assign'])).length === 0, 15_000);
    expect((await taskJobs()).filter((job) => job.trigger === 'deferred')).toEqual([]);
  });

  it('steps 4-6: nothing of mod_assign is in flight; new events it observes queue while paused (emitted through core on both fronts); mod_assign is in maintenance', async () => {
    expect(await readInFlightJobs(database.db, ['mod_assign'])).toEqual([]);
    for (let seq = 1; seq <= 6; seq++) {
      expect(await viewCourse(fronts[seq % 2]!, 1, seq)).toMatchObject({ queuedFor: ['mod_assign'] });
    }
    await sleep(1000);
    expect(await queuedEvents()).toEqual([1, 2, 3, 4, 5, 6]);
    // Not processed: the log table does not even exist before release 4's step.
    const table = await sql<{ n: number }>`select count(*)::int as n from information_schema.tables where table_name = 'assign_event_log'`.execute(database.db);
    expect(table.rows[0]!.n).toBe(0);
    expect(await stateOf('mod_assign')).toBe('maintenance');
    for (const front of fronts) expect((await get(`${front.url}/mod_assign/`)).status).toBe(503);
  });

  it('steps 7-9: release 4 is deployed, the fronts restart, `upgrade --no-maintenance` runs mod_assign\'s component step and leaves it in post-install', async () => {
    await stop();
    await site.deploy(4);
    await start();
    const plan = await cli(['upgrade', ...siteArgs(), '--is-maintenance-required']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(3);

    const upgrade = await cli(['upgrade', ...siteArgs(), '--no-maintenance', '--non-interactive']);
    expect(upgrade.code, upgrade.stdout + upgrade.stderr).toBe(0);
    expect(await stateOf('mod_assign')).toBe('post-install');
    const status = await cli(['status', ...siteArgs()]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/mod_assign[^\n]*2026040100/);
    const schema = await cli(['check-schema', ...siteArgs()]);
    expect(schema.code, schema.stdout + schema.stderr).toBe(0);
    // Still queued: post-install holds events and tasks for the admins' setup.
    await sleep(500);
    expect(await eventLog()).toEqual([]);
    expect(await queuedEvents()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('step 10: in post-install, admins logged in with the secret reach mod_assign on both fronts; anonymous users still get 503', async () => {
    adminCookie = await adminLogin(fronts[0]!);
    for (const front of fronts) {
      await waitFor(`admin 200 on ${front.url}`, async () => (await get(`${front.url}/mod_assign/`, adminCookie)).status === 200, 5000);
      expect(JSON.parse((await get(`${front.url}/mod_assign/`, adminCookie)).body)).toEqual({ component: 'mod_assign', release: '1.3' });
      const anonymous = await get(`${front.url}/mod_assign/`);
      expect(anonymous.status).toBe(503);
      expect(anonymous.body).toContain('mod_assign');
      expect((await get(`${front.url}/mod_quiz/`)).status).toBe(200);
    }
    expect(await adminLogin(fronts[1]!)).toMatch(/^outageless_admin=/);
  });

  it('steps 11-12: `maintenance disable --component mod_assign` replays the queued events in emission order, and the deferred task runs exactly once', async () => {
    const disable = await cli(['maintenance', 'disable', '--component', 'mod_assign', ...siteArgs()]);
    expect(disable.code, disable.stdout + disable.stderr).toBe(0);
    expect(await stateOf('mod_assign')).toBe('normal');

    await waitFor('the queued events', async () => (await eventLog()).length === 6, 15_000);
    await waitFor('the deferred run', async () => (await taskJobs()).some((job) => job.trigger === 'deferred' && job.state === 'completed'), 15_000).catch(async (error) => {
      throw new Error(`${String(error)}: jobs ${JSON.stringify(await taskJobs())}, deferred ${JSON.stringify(await readDeferredTasks(database.db))}\n${fronts.map((f) => f.output().stderr).join('\n')}`);
    });
    await sleep(1000);
    expect((await eventLog()).map((row) => row.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await queuedEvents()).toEqual([]);
    expect((await taskJobs()).filter((job) => job.trigger === 'deferred')).toEqual([{ state: 'completed', trigger: 'deferred' }]);
    expect(await readDeferredTasks(database.db)).toEqual([]);
  });

  it('steps 13-14: mod_assign answers 200 for everyone on both fronts and is fully usable (new events are processed at once)', async () => {
    for (const front of fronts) {
      await waitFor(`anonymous 200 on ${front.url}`, async () => (await get(`${front.url}/mod_assign/`)).status === 200, 5000);
      expect(JSON.parse((await get(`${front.url}/mod_assign/capabilities`)).body).capabilities).toContain('mod/assign:grade');
    }
    await viewCourse(fronts[0]!, 2, 7);
    await waitFor('a new event', async () => (await eventLog()).length === 7, 15_000);
    expect((await eventLog()).at(-1)).toMatchObject({ seq: 7 });
    expect(await stateOf('mod_assign')).toBe('normal');
  });
});
