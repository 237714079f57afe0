/**
 * A small site for the jobs tests: core with a `job_log` table that every handler writes to
 * (so counts are read from the database, whichever front ran the handler), and
 * - mod_alpha: task `tick`, observers of `thing_happened` and `slow_thing`, and a subplugin
 *   alphasub_x with task `subtick` (it pauses with its parent);
 * - mod_beta: an observer of `thing_happened` (keeps flowing while mod_alpha is paused).
 *
 * `slow_thing` blocks until the test opens the gate in `jobsTestHooks()`.
 */
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { outageless } from '../../src/fastify/plugin.ts';
import { discoverSite } from '../../src/component/discover.ts';
import type { SiteDatabase } from '../../src/database/open.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import type { Jobs } from '../../src/jobs/runtime.ts';
import { createSiteDir, type SiteDir } from '../support/sites.ts';

export interface JobsTestHooks {
  slowStarted: number;
  /** How many more times mod_beta's flaky observer throws. */
  flakyFailures: number;
  gate: Promise<void>;
  open(): void;
}

/** Shared with the handlers of the test site (same process). */
export function jobsTestHooks(): JobsTestHooks {
  const g = globalThis as { __outagelessJobsTest?: JobsTestHooks };
  if (!g.__outagelessJobsTest) {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    g.__outagelessJobsTest = { slowStarted: 0, flakyFailures: 0, gate, open };
  }
  return g.__outagelessJobsTest;
}

/** Closes the gate again (a new slow event blocks until `open()`). */
export function resetGate(): void {
  const hooks = jobsTestHooks();
  hooks.gate = new Promise<void>((resolve) => (hooks.open = resolve));
}

const VERSION = 2026010100;

const files: Record<string, string> = {
  'core/version.ts': `export default { kind: 'version', component: 'core', version: ${VERSION}, maturity: 'stable', pluginTypes: ['mod'] };\n`,
  'core/db/schema.ts': `export default { kind: 'schema', tables: {
    job_log: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        component: { type: 'varchar(100)' },
        kind: { type: 'varchar(20)' },
        name: { type: 'varchar(100)' },
        detail: { type: 'varchar(200)', nullable: true },
        seq: { type: 'integer', nullable: true },
      },
      primaryKey: ['id'],
    },
  } };\n`,
  // defineTasks / defineObservers from the package, as plugin authors write them.
  'plugins/mod/alpha/version.ts': `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'mod_alpha', version: ${VERSION}, subplugins: { alphasub: 'sub' } });\n`,
  'plugins/mod/alpha/db/tasks.ts': `import { defineTasks } from 'outageless';
export default defineTasks([{ name: 'tick', schedule: '*/5 * * * *', description: 'test task' }]);\n`,
  'plugins/mod/alpha/db/events.ts': `import { defineObservers } from 'outageless';
export default defineObservers([
  { event: 'thing_happened', handler: 'onThing' },
  { event: 'slow_thing', handler: 'onSlow' },
]);\n`,
  'plugins/mod/alpha/index.ts': `
const log = (ctx, kind, name, detail, seq) =>
  ctx.db.insertInto('job_log').values({ component: ctx.component, kind, name, detail: detail ?? null, seq: seq ?? null }).execute();
export default async function routes(app) { app.get('/', async () => ({ component: 'mod_alpha' })); }
export const tasks = {
  tick: async (ctx) => log(ctx, 'task', 'tick', ctx.trigger + (ctx.deferred ? ':' + ctx.deferred.times : '')),
};
export const observers = {
  onThing: async (event, ctx) => log(ctx, 'event', event.name, null, event.payload.seq),
  onSlow: async (event, ctx) => {
    const hooks = globalThis.__outagelessJobsTest;
    hooks.slowStarted++;
    await hooks.gate;
    await log(ctx, 'event', event.name, 'finished', event.payload.seq);
  },
};\n`,
  // Plain arrays work as well as the define* helpers.
  'plugins/mod/alpha/sub/x/version.ts': `export default { kind: 'version', component: 'alphasub_x', version: ${VERSION} };\n`,
  'plugins/mod/alpha/sub/x/db/tasks.ts': `export default [{ name: 'subtick', schedule: '0 * * * *' }];\n`,
  'plugins/mod/alpha/sub/x/index.ts': `
export const tasks = {
  subtick: async (ctx) => { await ctx.db.insertInto('job_log').values({ component: ctx.component, kind: 'task', name: 'subtick', detail: ctx.trigger }).execute(); },
};\n`,
  'plugins/mod/beta/version.ts': `export default { kind: 'version', component: 'mod_beta', version: ${VERSION} };\n`,
  'plugins/mod/beta/db/events.ts': `export default [
  { event: 'thing_happened', handler: 'onThing' },
  { event: 'flaky_thing', handler: 'onFlaky' },
];\n`,
  'plugins/mod/beta/index.ts': `
export default async function routes(app) { app.get('/', async () => ({ component: 'mod_beta' })); }
export const observers = {
  onThing: async (event, ctx) => { await ctx.db.insertInto('job_log').values({ component: ctx.component, kind: 'event', name: event.name, seq: event.payload.seq }).execute(); },
  onFlaky: async (event, ctx) => {
    const hooks = globalThis.__outagelessJobsTest;
    if (hooks.flakyFailures > 0) {
      hooks.flakyFailures--;
      throw new Error('flaky observer failed');
    }
    await ctx.db.insertInto('job_log').values({ component: ctx.component, kind: 'event', name: event.name, seq: event.payload.seq }).execute();
  },
};\n`,
};

/**
 * Writes the test site. Whole-second mtimes: component/load.ts puts mtimeMs in the import URL,
 * and vitest takes a fractional one for a file extension (see test/fastify/guard.test.ts).
 */
export async function createJobsSite(): Promise<SiteDir> {
  const site = await createSiteDir();
  for (const [path, text] of Object.entries(files)) await site.write(path, text);
  await wholeSecondMtimes(site);
  return site;
}

/** Call after editing a file of the site. */
export async function wholeSecondMtimes(site: SiteDir): Promise<void> {
  const when = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const dir of ['core', 'plugins']) {
    for (const entry of await readdir(join(site.root, dir), { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), when, when);
    }
  }
}

export async function installSite(database: SiteDatabase, root: string): Promise<void> {
  const result = await runUpgrade({ database, code: await discoverSite(root) });
  if (result.kind !== 'upgraded') throw new Error(`install did nothing: ${result.kind}`);
}

/** A front: Fastify with the outageless plugin, its jobs tuned for tests. */
export async function startApp(database: SiteDatabase, root: string, options: { pollIntervalMs?: number } = {}): Promise<FastifyInstance & { jobs: Jobs }> {
  const app = Fastify();
  await app.register(outageless, {
    root,
    database,
    pollIntervalMs: options.pollIntervalMs ?? 50,
    heartbeatMs: 60_000,
    jobs: { eventPollIntervalMs: 250, taskPollIntervalMs: 500, replayIntervalMs: 1000, eventAttempts: 2 },
  });
  await app.ready();
  Object.defineProperty(app, 'jobs', { value: app.outagelessJobs!, enumerable: false });
  return app as unknown as FastifyInstance & { jobs: Jobs };
}

export interface LogRow {
  component: string;
  kind: string;
  name: string;
  detail: string | null;
  seq: number | null;
}

export async function readLog(database: SiteDatabase, filter: Partial<Pick<LogRow, 'component' | 'kind' | 'name'>> = {}): Promise<LogRow[]> {
  let query = database.db.selectFrom('job_log').select(['component', 'kind', 'name', 'detail', 'seq']).orderBy('id');
  for (const [column, value] of Object.entries(filter)) query = query.where(column, '=', value);
  return (await query.execute()) as LogRow[];
}

export async function clearLog(database: SiteDatabase): Promise<void> {
  await sql`delete from job_log`.execute(database.db);
}

/** Polls `check` until it returns true or throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const memoryUrl = (label: string) => `pglite://memory/jobs-${label}-${randomBytes(4).toString('hex')}`;
