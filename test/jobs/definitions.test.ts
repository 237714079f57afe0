/**
 * The plugin author's contract for db/tasks.ts and db/events.ts: validation with typed errors
 * (bad shape, bad cron, duplicate task, missing handler), the define* helpers, a front that
 * keeps serving when one component's jobs are broken, and the SQL splitter pg-boss needs on
 * PGlite.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/database/open.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { isOutagelessError, type OutagelessError } from '../../src/errors.ts';
import { cronProblem, defineObservers, defineTasks, loadJobCatalog, validateObservers, validateTasks } from '../../src/jobs/definitions.ts';
import { splitStatements } from '../../src/jobs/executor.ts';
import { loadRuntimeModules } from '../../src/jobs/modules.ts';
import { createJobsSite, installSite, memoryUrl, readLog, startApp, waitFor, wholeSecondMtimes } from './site.ts';
import type { SiteDir } from '../support/sites.ts';

const TASKS = 'plugins/mod/alpha/db/tasks.ts';

function thrown(run: () => unknown): OutagelessError {
  try {
    run();
  } catch (error) {
    if (isOutagelessError(error)) return error;
    throw error;
  }
  throw new Error('expected a typed error');
}

describe('db/tasks.ts and db/events.ts validation', () => {
  it('accepts plain arrays and the define* helpers alike', () => {
    const tasks = [{ name: 'tick', schedule: '*/5 * * * *', description: 'x' }] as const;
    expect(defineTasks(tasks)).toBe(tasks);
    expect(validateTasks(TASKS, 'mod_alpha', tasks)).toEqual(tasks);
    const observers = [{ event: 'course_created', handler: 'onCourseCreated' }] as const;
    expect(defineObservers(observers)).toBe(observers);
    expect(validateObservers('plugins/mod/alpha/db/events.ts', 'mod_alpha', observers)).toEqual(observers);
  });

  it.each([
    ['*/5 * * * *', undefined],
    ['0 3 * * mon-fri', undefined],
    ['15,45 8-18/2 1 jan,jul 0', undefined],
    ['* * * *', 'has 4 fields'],
    ['* * * * * *', 'has 6 fields'],
    ['61 * * * *', 'minute "61" is outside 0-59'],
    ['* 24 * * *', 'hour "24" is outside 0-23'],
    ['*/0 * * * *', 'bad step'],
    ['5-1 * * * *', 'runs backwards'],
    ['* * * foo *', 'not a value or a range'],
  ])('cron %j', (expression, problem) => {
    if (problem === undefined) expect(cronProblem(expression)).toBeUndefined();
    else expect(cronProblem(expression)).toContain(problem);
  });

  it('names file, component, task and the fix for a bad schedule', () => {
    const error = thrown(() => validateTasks(TASKS, 'mod_alpha', [{ name: 'tick', schedule: 'every five minutes' }]));
    expect(error.code).toBe('OUTAGELESS_ERR_TASK_SCHEDULE');
    expect(error.location).toEqual({ file: TASKS, component: 'mod_alpha', step: 'tick', field: 'schedule' });
    expect(error.describe()).toMatch(/fix: Write a five-field cron expression/);
  });

  it('rejects a bad shape, a duplicate task and an unknown time zone', () => {
    expect(thrown(() => validateTasks(TASKS, 'mod_alpha', { name: 'tick' })).code).toBe('OUTAGELESS_ERR_JOB_DEFINITION');
    expect(thrown(() => validateTasks(TASKS, 'mod_alpha', undefined)).message).toContain('file has no default export');
    const badName = thrown(() => validateTasks(TASKS, 'mod_alpha', [{ name: 'send reminders', schedule: '* * * * *' }]));
    expect(badName.location.field).toBe('[0].name');
    expect(thrown(() => validateTasks(TASKS, 'mod_alpha', [{ name: 'a', schedule: '* * * * *' }, { name: 'a', schedule: '0 * * * *' }])).code).toBe('OUTAGELESS_ERR_DUPLICATE_TASK');
    expect(thrown(() => validateTasks(TASKS, 'mod_alpha', [{ name: 'a', schedule: '* * * * *', timezone: 'Mars/Olympus' }])).message).toContain('unknown time zone');
    expect(thrown(() => validateObservers('plugins/mod/alpha/db/events.ts', 'mod_alpha', [{ event: 'x' }])).code).toBe('OUTAGELESS_ERR_JOB_DEFINITION');
  });
});

describe('handlers and fronts', () => {
  const sites: SiteDir[] = [];
  afterAll(async () => {
    for (const site of sites) await site.cleanup();
  });

  async function brokenSite(): Promise<SiteDir> {
    const site = await createJobsSite();
    sites.push(site);
    // mod_alpha's index.ts loses its task handler; the rest of the site is intact.
    await site.edit('plugins/mod/alpha/index.ts', (text) => text.replace('tick: async', 'tock: async'));
    await wholeSecondMtimes(site);
    return site;
  }

  it('a missing handler is a typed error naming the task and the runtime file (strict loading)', async () => {
    const site = await brokenSite();
    const code = await discoverSite(site.root);
    const error = (await loadJobCatalog(code, await loadRuntimeModules(code)).catch((e: unknown) => e)) as OutagelessError;
    expect(error.code).toBe('OUTAGELESS_ERR_TASK_HANDLER_MISSING');
    expect(error.location).toMatchObject({ component: 'mod_alpha', step: 'tick', file: 'plugins/mod/alpha/index.ts', field: 'tasks.tick' });
    expect(error.hint).toContain('export const tasks = { tick: async (ctx)');
  });

  it('a front with a broken component starts, reports it, leaves its jobs alone, and serves the rest', async () => {
    const site = await brokenSite();
    const database = await openDatabase(memoryUrl('broken'));
    try {
      await installSite(database, site.root);
      const app = await startApp(database, site.root);
      try {
        expect(app.jobs.problems.map((p) => p.code)).toEqual(['OUTAGELESS_ERR_TASK_HANDLER_MISSING']);
        await expect(app.jobs.runTask('mod_alpha', 'tick')).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_TASK_HANDLER_MISSING' });
        // Other components work; events for the broken one still queue (for a front whose code is right).
        expect(await app.jobs.runTask('alphasub_x', 'subtick')).toBe('ran');
        const emitted = await app.jobs.emit('thing_happened', { seq: 1 });
        expect(emitted.jobs.map((j) => j.component).sort()).toEqual(['mod_alpha', 'mod_beta']);
        await waitFor('mod_beta to process', async () => (await readLog(database, { component: 'mod_beta' })).length === 1);
        expect(await readLog(database, { component: 'mod_alpha' })).toEqual([]);
        expect(await app.jobs.boss.findJobs('outageless.event.mod_alpha', { queued: true })).toHaveLength(1);
        expect((await app.inject({ method: 'GET', url: '/mod_alpha/' })).statusCode).toBe(200);
      } finally {
        await app.close();
      }
    } finally {
      await database.close();
    }
  });
});

describe('splitStatements (multi-statement SQL for PGlite)', () => {
  it('splits at top-level semicolons only', () => {
    const text = `
      BEGIN;
      SET LOCAL lock_timeout = 30000;
      CREATE FUNCTION s.f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
      CREATE FUNCTION s.g() RETURNS int AS $body$ BEGIN RETURN 2; END; $body$ LANGUAGE plpgsql;
      SELECT 'a;b''c', "we;ird", E'x\\';y' /* c; /* nested; */ d */; -- tail; comment
      COMMIT;
    `;
    expect(splitStatements(text)).toEqual([
      'BEGIN',
      'SET LOCAL lock_timeout = 30000',
      'CREATE FUNCTION s.f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql',
      'CREATE FUNCTION s.g() RETURNS int AS $body$ BEGIN RETURN 2; END; $body$ LANGUAGE plpgsql',
      `SELECT 'a;b''c', "we;ird", E'x\\';y' /* c; /* nested; */ d */`,
      'COMMIT',
    ]);
    expect(splitStatements('select $1::int')).toEqual(['select $1::int']);
  });
});
