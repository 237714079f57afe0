/**
 * A small site for the upgrade-history and admin-upgrade tests: a bare core, `local_wait`
 * (whose last step of a release can wait on a PostgreSQL advisory lock the test holds, so
 * assertions happen mid-run), `local_other` (a route that must keep serving), and
 * `local_flaky` (a step that fails until a row exists). Plus an `app.inject` client with
 * cookies and an admin login.
 */
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import pg from 'pg';
import Fastify, { type FastifyInstance } from 'fastify';
import { outageless } from '../../src/fastify/plugin.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createScratchDatabase, type ScratchDatabase } from './databases.ts';
import { createSiteDir, writeBareCore, type SiteDir } from './sites.ts';

export const V1 = 2026010100;
export const ADMIN_SECRET = 'history test admin secret';
/** The advisory lock a waiting step polls for (it never blocks on it: lock_timeout stays out of it). */
export const WAIT_LOCK = 424242;

export type StepClass = 'none' | 'component' | 'site';

/** local_wait's version at release n (two versions a release, room for a pre step). */
export const waitVersion = (n: number) => V1 + 2 * n;

/**
 * Works around src/component/load.ts: its cache-busting query ends in the fractional part of
 * mtimeMs, which Vite (so vitest, in process) takes for the file's extension. Whole-second
 * mtimes keep the query free of a dot (as test/fastify/guard.test.ts does).
 */
export async function wholeSecondMtimes(dir: string): Promise<void> {
  const when = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), when, when);
  }
}

/** A plugin with a `GET /` route and a table. */
async function writePlugin(site: SiteDir, name: string, version: number, steps: string, extra = ''): Promise<void> {
  const dir = `plugins/local/${name}`;
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_${name}', version: ${version}, requires: ${V1}, maturity: 'stable', maintenance: { disableable: true } });
`);
  await site.write(`${dir}/index.ts`, `export default async function routes(app) {
  app.get('/', async () => ({ component: 'local_${name}', version: ${version} }));
}
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: { local_${name}_item: { columns: { id: { type: 'bigint', autoIncrement: true }, note: { type: 'varchar(50)', nullable: true } }, primaryKey: ['id'] } },
});
`);
  await site.write(`${dir}/db/upgrade.ts`, `import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
${extra}
export default defineUpgrade({ steps: [${steps}] });
`);
}

/** Polls for the test's advisory lock, then lets it go: the step runs until the test releases it. */
const WAIT_BODY = `for (;;) {
        const [row] = await db.selectNoFrom((eb) => eb.fn('pg_try_advisory_lock', [eb.val(${WAIT_LOCK})]).as('got')).execute();
        if (row.got) break;
        await sleep(25);
      }
      await db.selectNoFrom((eb) => eb.fn('pg_advisory_unlock', [eb.val(${WAIT_LOCK})]).as('done')).execute();`;

export interface WaitRelease {
  /** Release n of local_wait: version waitVersion(n), one step per release up to n. */
  readonly n: number;
  /** The class of release n's step (earlier releases' steps are `none`). */
  readonly outage: StepClass;
  /** Release n's step waits on WAIT_LOCK. */
  readonly wait?: boolean;
  /** Release n also has a `pre` step (before its main step). */
  readonly pre?: boolean;
}

/**
 * Writes the whole site: core, local_other, local_flaky (release `flaky`: 0 has no steps, 1
 * has `flaky_a` and `flaky_b`, which throws until local_flaky_item has a row) and local_wait.
 */
export async function writeHistorySite(site: SiteDir, wait: WaitRelease, flaky: 0 | 1 = 0): Promise<void> {
  await writeBareCore(site, V1);
  await writePlugin(site, 'other', V1, '');
  const flakySteps = flaky === 0 ? '' : `{
    version: ${V1 + 1}, id: 'flaky_a', outage: 'none', transaction: true,
    async run({ db }) { await db.selectNoFrom((eb) => eb.val(1).as('one')).execute(); },
  }, {
    version: ${V1 + 2}, id: 'flaky_b', outage: 'none', transaction: true,
    async run({ db }) {
      const rows = await db.selectFrom('local_flaky_item').selectAll().execute();
      if (rows.length === 0) throw new Error('flaky_b: local_flaky_item is still empty');
    },
  }`;
  await writePlugin(site, 'flaky', V1 + (flaky === 0 ? 0 : 2), flakySteps);
  const steps: string[] = [];
  for (let release = 1; release <= wait.n; release++) {
    const last = release === wait.n;
    if (last && wait.pre) {
      steps.push(`{ version: ${waitVersion(release) - 1}, id: 'wait_pre_${release}', phase: 'pre', outage: 'none', async run() {} }`);
    }
    steps.push(`{
    version: ${waitVersion(release)}, id: 'wait_${release}', outage: '${last ? wait.outage : 'none'}', transaction: ${last && wait.outage !== 'none'},
    async run({ db }) {
      ${last && wait.wait ? WAIT_BODY : ''}
    },
  }`);
  }
  await writePlugin(site, 'wait', waitVersion(wait.n), steps.join(', '));
  await wholeSecondMtimes(join(site.root, 'core'));
  await wholeSecondMtimes(join(site.root, 'plugins'));
}

/** Holds WAIT_LOCK on its own connection until released: waiting steps wait meanwhile. */
export async function holdWaitLock(url: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('select pg_advisory_lock($1)', [WAIT_LOCK]);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('select pg_advisory_unlock($1)', [WAIT_LOCK]).catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

export function csrfToken(body: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no CSRF token in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

export function planField(body: string): string {
  const match = /name="plan" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no plan fingerprint in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

/** A browser for `app.inject`: keeps the cookies the server sets and sends them back. */
export class Client {
  readonly cookies = new Map<string, string>();
  readonly app: FastifyInstance;
  constructor(app: FastifyInstance) {
    this.app = app;
  }

  async request(options: { method?: 'GET' | 'POST'; url: string; accept?: string; form?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = { accept: options.accept ?? 'text/html' };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (options.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await this.app.inject({ method: options.method ?? 'GET', url: options.url, headers, ...(options.form ? { payload: new URLSearchParams(options.form).toString() } : {}) });
    const header = response.headers['set-cookie'];
    for (const line of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
      const [pair = ''] = line.split(';');
      const index = pair.indexOf('=');
      const value = pair.slice(index + 1).trim();
      if (value) this.cookies.set(pair.slice(0, index).trim(), value);
      else this.cookies.delete(pair.slice(0, index).trim());
    }
    return response;
  }

  get(url: string, accept = 'text/html'): Promise<Response> {
    return this.request({ url, accept });
  }

  json(url: string): Promise<Response> {
    return this.request({ url, accept: 'application/json' });
  }

  post(url: string, form: Record<string, string>): Promise<Response> {
    return this.request({ method: 'POST', url, form });
  }

  async login(): Promise<void> {
    const page = await this.get('/admin/login');
    const response = await this.post('/admin/login', { _csrf: csrfToken(page.body), password: ADMIN_SECRET, next: '/admin' });
    expect(response.statusCode, response.body).toBe(303);
  }
}

/** A history test's site: release 0 installed into its own scratch database. */
export interface HistorySite {
  readonly scratch: ScratchDatabase;
  readonly site: SiteDir;
  readonly database: SiteDatabase;
}

/** Creates the scratch database and the site, and installs release 0 of local_wait. */
export async function installHistorySite(label: string): Promise<HistorySite> {
  const scratch = await createScratchDatabase(label);
  const site = await createSiteDir();
  await writeHistorySite(site, { n: 0, outage: 'none' });
  const database = await openDatabase(scratch.url);
  expect((await runUpgrade({ database, code: await discoverSite(site.root) })).kind).toBe('upgraded');
  return { scratch, site, database };
}

/** Closes what installHistorySite opened (each part may be missing after a failed setup). */
export async function removeHistorySite(history: Partial<HistorySite>): Promise<void> {
  await history.database?.close();
  await history.site?.cleanup();
  await history.scratch?.drop();
}

/** A front on the code now on disk (fronts read their code once, at start), kept in `fronts` to close. */
export async function startHistoryFront(history: HistorySite, fronts: FastifyInstance[]): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(outageless, { root: history.site.root, database: history.database, adminSecret: ADMIN_SECRET, pollIntervalMs: 100, heartbeatMs: 60_000, jobs: false });
  await app.ready();
  fronts.push(app);
  return app;
}
