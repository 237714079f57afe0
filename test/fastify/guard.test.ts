/**
 * The front's guard (DESIGN §4.4), end to end through the Fastify plugin with `app.inject`:
 * normal serving, site maintenance, a running upgrade (maintenance and online mode), code
 * ahead of the database (with and without the UI upgrade lock), code behind it, and an
 * upgrade started from the admin page. Every rule runs on the embedded database; the main
 * ones run again on PostgreSQL, where the state must reach the front through LISTEN/NOTIFY.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { outageless } from '../../src/fastify/plugin.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { notifyStateChanged, openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import type { HeldUpgradeLock, UpgradeMode } from '../../src/database/upgrade-lock.ts';
import { UPGRADING_MESSAGE } from '../../src/runtime/guard.ts';
import { readInstalled } from '../../src/state/installed.ts';
import { setSiteMaintenance, setUiUpgradeLock } from '../../src/state/flags.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const SECRET = 'guard-test admin secret';
const V2 = 2026020100;
const V3 = 2026030100;

/** Every component route of release 1 and 2 (each component serves `GET /`). */
const RELEASE_2_ROUTES = [
  '/', '/about', '/mod_assign/', '/mod_quiz/', '/mod_quiz/capabilities', '/local_reports/', '/block_news/', '/auth_manual/',
  '/theme_clean/', '/format_topics/', '/assignsubmission_file/', '/assignsubmission_onlinetext/',
];
/** Routes that serve whatever happens between releases 2 and 3 (class none or unchanged). */
const SAFE_2_TO_3 = ['/', '/about', '/mod_assign/', '/block_news/', '/auth_manual/', '/theme_clean/', '/format_topics/', '/assignsubmission_file/', '/assignsubmission_onlinetext/'];
const SITE_CLASS_2_TO_3 = ['/mod_quiz/', '/mod_quiz/capabilities', '/local_reports/'];

// ---------------------------------------------------------------------------------------
// Helpers

/**
 * Works around src/component/load.ts: its cache-busting query ends in the fractional part of
 * mtimeMs (`?v=1253-1795317435775.826`), which Vite (so vitest, in process) takes for the
 * file's extension and then parses TypeScript as JavaScript. Whole-second mtimes keep the
 * query free of a dot.
 */
async function wholeSecondMtimes(dir: string): Promise<void> {
  const when = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), when, when);
  }
}

/** One working copy of each release for the whole file (a release's code never changes). */
const siteDirs = new Map<number, Promise<SiteDir>>();
function releaseRoot(release: number): Promise<string> {
  let dir = siteDirs.get(release);
  if (!dir) {
    dir = createSiteDir(release).then(async (site) => {
      await wholeSecondMtimes(join(site.root, 'core'));
      await wholeSecondMtimes(join(site.root, 'plugins'));
      return site;
    });
    siteDirs.set(release, dir);
  }
  return dir.then((site) => site.root);
}

afterAll(async () => {
  for (const dir of siteDirs.values()) await (await dir).cleanup();
});

const memoryUrl = (label: string) => `pglite://memory/guard-${label}-${randomBytes(4).toString('hex')}`;

async function upgradeTo(database: SiteDatabase, release: number, mode: UpgradeMode = 'maintenance') {
  const result = await runUpgrade({ database, code: await discoverSite(await releaseRoot(release)), mode });
  expect(result.kind).toBe('upgraded');
  return result;
}

async function startFront(database: SiteDatabase, release: number, options: { pollIntervalMs?: number } = {}): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(outageless, {
    root: await releaseRoot(release),
    database,
    adminSecret: SECRET,
    pollIntervalMs: options.pollIntervalMs ?? 50,
    heartbeatMs: 60_000,
  });
  await app.ready();
  return app;
}

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

/** A browser for `app.inject`: keeps the cookies the server sets and sends them back. */
class Client {
  readonly cookies = new Map<string, string>();
  readonly app: FastifyInstance;
  constructor(app: FastifyInstance) {
    this.app = app;
  }

  async request(options: { method?: 'GET' | 'POST'; url: string; accept?: string; form?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = { accept: options.accept ?? 'text/html' };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (options.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await this.app.inject({
      method: options.method ?? 'GET',
      url: options.url,
      headers,
      ...(options.form ? { payload: new URLSearchParams(options.form).toString() } : {}),
    });
    this.keep(response);
    return response;
  }

  private keep(response: Response): void {
    const header = response.headers['set-cookie'];
    for (const line of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
      const [pair = '', ...attributes] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) < Date.now()));
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
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
    expect(page.statusCode).toBe(200);
    const response = await this.post('/admin/login', { _csrf: csrfToken(page.body), password: SECRET, next: '/admin' });
    expect(response.statusCode, response.body).toBe(303);
    expect(this.cookies.has('outageless_admin')).toBe(true);
  }
}

function csrfToken(body: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no CSRF token in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

/** "Upgrade now" leads to the confirmation page; its confirm button posts the plan it showed. */
async function confirmUpgrade(admin: Client) {
  const confirm = await admin.get('/admin/upgrade/confirm');
  expect(confirm.statusCode, confirm.body).toBe(200);
  const plan = /name="plan" value="([^"]+)"/.exec(confirm.body)?.[1];
  expect(plan).toBeDefined();
  return admin.post('/admin/upgrade', { _csrf: csrfToken(confirm.body), plan: plan! });
}

async function expectServed(client: Client, url: string): Promise<void> {
  const response = await client.json(url);
  expect(response.statusCode, `${url} answered ${response.statusCode}: ${response.body}`).toBe(200);
}

async function expectAllServed(client: Client, urls: readonly string[]): Promise<void> {
  for (const url of urls) await expectServed(client, url);
}

interface UnavailableBody {
  error: { code: string; message: string; component: string | null; retryAfter: number };
}

/** A JSON 503 with Retry-After, the stable code and (optionally) the component. */
async function expectUnavailable(client: Client, url: string, code: string, component?: string | null): Promise<UnavailableBody> {
  const response = await client.json(url);
  expect(response.statusCode, `${url} answered ${response.statusCode}: ${response.body}`).toBe(503);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const retryAfter = Number(response.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter > 0, `Retry-After: ${response.headers['retry-after']}`).toBe(true);
  const body = response.json<UnavailableBody>();
  expect(body.error.code).toBe(code);
  expect(body.error.retryAfter).toBe(retryAfter);
  expect(body.error.message.length).toBeGreaterThan(0);
  if (component !== undefined) expect(body.error.component).toBe(component);
  return body;
}

/** An HTML 503 (for a browser) with Retry-After that shows `text`. */
async function expectUnavailablePage(client: Client, url: string, text: string): Promise<Response> {
  const response = await client.get(url);
  expect(response.statusCode, `${url} answered ${response.statusCode}`).toBe(503);
  expect(response.headers['content-type']).toMatch(/^text\/html/);
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
  expect(response.body).toContain(text);
  return response;
}

/** Retries `check` until it passes or `timeoutMs` runs out (state that arrives by NOTIFY). */
async function eventually(check: () => Promise<void>, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

function planRow(body: string, component: string): string {
  const match = new RegExp(`<tr data-component="${component}">[\\s\\S]*?</tr>`).exec(body);
  if (!match) throw new Error(`no plan row for ${component}`);
  return match[0];
}

async function pollProgress(admin: Client, timeoutMs = 25_000): Promise<{ running: boolean; outcome: string | null; error: string | null; lines: string[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await admin.json('/admin/upgrade/progress');
    expect(response.statusCode).toBe(200);
    const progress = response.json<{ running: boolean; outcome: string | null; error: string | null; lines: string[] }>();
    if (!progress.running) return progress;
    if (Date.now() > deadline) throw new Error(`web upgrade still running after ${timeoutMs} ms:\n${progress.lines.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---------------------------------------------------------------------------------------
// Embedded database
//
// One PGlite instance serves the whole section (each new instance costs seconds of initdb),
// so the describes below run in order over one site's life: empty, installed at release 1,
// upgraded to 2 with release 1, 2 and 3 fronts on it, then upgraded to 3 from the admin page.
// afterEach clears the flags and the lock a test may leave behind.

describe('the guard on the embedded database', () => {
  let database: SiteDatabase;
  const fronts = new Map<number, FastifyInstance>();
  let held: HeldUpgradeLock | undefined;

  /** The front running release `n` (started on first use, kept for the whole section). */
  async function front(release: number): Promise<FastifyInstance> {
    let app = fronts.get(release);
    if (!app) {
      app = await startFront(database, release, { pollIntervalMs: 250 });
      fronts.set(release, app);
    }
    return app;
  }

  async function refreshAll(): Promise<void> {
    for (const app of fronts.values()) await app.outageless.refresh();
  }

  beforeAll(async () => {
    database = await openDatabase(memoryUrl('embedded'));
  });

  afterEach(async () => {
    await held?.release();
    held = undefined;
    await setSiteMaintenance(database.db, false);
    await setUiUpgradeLock(database.db, false);
    await refreshAll();
  });

  afterAll(async () => {
    for (const app of fronts.values()) await app.close();
    await database?.close();
  });

  describe('release 1 front on an empty database: not installed', () => {
    let visitor: Client;
    let admin: Client;

    beforeAll(async () => {
      const app = await front(1);
      visitor = new Client(app);
      admin = new Client(app);
      await admin.login();
    });

    it('component routes answer 503 NOT_INSTALLED; /healthz and /readyz answer 200', async () => {
      for (const url of RELEASE_2_ROUTES) await expectUnavailable(visitor, url, 'OUTAGELESS_NOT_INSTALLED');
      await expectUnavailablePage(visitor, '/', 'not installed');
      expect((await visitor.json('/healthz')).statusCode).toBe(200);
      expect((await visitor.json('/readyz')).statusCode).toBe(200);
    });

    it('admins are sent to the upgrade page, which offers the install', async () => {
      const dashboard = await admin.get('/admin');
      expect(dashboard.statusCode).toBe(302);
      expect(dashboard.headers.location).toBe('/admin/upgrade');
      const page = await admin.get('/admin/upgrade');
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('id="upgrade-now"');
      expect(planRow(page.body, 'core')).toContain('fresh install');
    });
  });

  describe('release 2 code on a release 1 database: pending, class none', () => {
    let visitor: Client;
    let admin: Client;

    beforeAll(async () => {
      await upgradeTo(database, 1);
      await refreshAll();
      const app = await front(2);
      visitor = new Client(app);
      admin = new Client(app);
      await admin.login();
    });

    it('serves every route and stays ready while the upgrade is pending', async () => {
      const app = await front(2);
      expect(app.outageless.view().pending).toBe(true);
      expect(app.outageless.plan().maintenanceRequired).toBe(false);
      await expectAllServed(visitor, RELEASE_2_ROUTES);
      expect((await visitor.json('/')).json()).toEqual({ component: 'core', release: '1.1' });
      expect((await visitor.json('/healthz')).statusCode).toBe(200);
      expect((await visitor.json('/readyz')).statusCode).toBe(200);
    });

    it('prompts admins: /admin redirects to the upgrade page, which has the button and says no maintenance is needed', async () => {
      const dashboard = await admin.get('/admin');
      expect(dashboard.statusCode).toBe(302);
      expect(dashboard.headers.location).toBe('/admin/upgrade');
      const page = await admin.get('/admin/upgrade');
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('id="upgrade-prompt"');
      expect(page.body).toContain('It needs no maintenance');
      expect(page.body).toMatch(/<button[^>]*id="upgrade-now"[^>]*>Upgrade now<\/button>/);
      expect(planRow(page.body, 'mod_assign')).toContain('assign_add_duedate');
      expect(planRow(page.body, 'mod_assign')).toContain('class="class-none"');
      expect(page.body).not.toContain('class="class-site"');
    });
  });

  describe('release 1 front after the 1 -> 2 upgrade: code behind, but no breaking change', () => {
    let visitor: Client;

    beforeAll(async () => {
      await upgradeTo(database, 2, 'online');
      await refreshAll();
      visitor = new Client(await front(1));
    });

    it('serves every route and /readyz stays 200', async () => {
      const app = await front(1);
      const behind = app.outageless.plan().items.filter((item) => item.action === 'behind').map((item) => item.component);
      expect(behind).toEqual(expect.arrayContaining(['core', 'mod_assign', 'auth_manual', 'block_news']));
      expect(app.outageless.view().breaking).toEqual([]);
      await expectAllServed(visitor, RELEASE_2_ROUTES);
      expect((await visitor.json('/')).json()).toEqual({ component: 'core', release: '1.0' });
      const ready = await visitor.json('/readyz');
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ status: 'ready' });
    });
  });

  describe('release 2 front on the release 2 database', () => {
    let app: FastifyInstance;
    let visitor: Client;
    let admin: Client;

    beforeAll(async () => {
      app = await front(2);
      await app.outageless.refresh();
      visitor = new Client(app);
      admin = new Client(app);
      await admin.login();
    });

    it('normal: every component route, /healthz and /readyz answer 200; admins get the dashboard', async () => {
      expect(app.outageless.view().pending).toBe(false);
      await expectAllServed(visitor, RELEASE_2_ROUTES);
      expect((await visitor.json('/mod_assign/')).json()).toMatchObject({ component: 'mod_assign', release: '1.1' });
      const health = await visitor.json('/healthz');
      expect(health.statusCode).toBe(200);
      expect(health.json()).toEqual({ status: 'ok' });
      const ready = await visitor.json('/readyz');
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ status: 'ready' });
      const dashboard = await admin.get('/admin');
      expect(dashboard.statusCode).toBe(200);
      expect(dashboard.body).toContain('id="site-flags"');
    });

    it('site maintenance: 503 with Retry-After and the message (HTML and JSON); health and the admin area stay up', async () => {
      await setSiteMaintenance(database.db, true, 'Back at 5');
      await app.outageless.refresh();

      for (const url of RELEASE_2_ROUTES) {
        const body = await expectUnavailable(visitor, url, 'OUTAGELESS_SITE_MAINTENANCE');
        expect(body.error.message).toBe('Back at 5');
      }
      await expectUnavailablePage(visitor, '/', 'Back at 5');
      await expectUnavailablePage(visitor, '/mod_assign/', 'Back at 5');
      // A browser that accepts JSON too, but prefers HTML, gets the page.
      const preferHtml = await visitor.get('/mod_quiz/', 'text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8');
      expect(preferHtml.statusCode).toBe(503);
      expect(preferHtml.headers['content-type']).toMatch(/^text\/html/);
      // Requests no route matches count as core's and are refused the same way.
      await expectUnavailable(visitor, '/no-such-page', 'OUTAGELESS_SITE_MAINTENANCE');

      expect((await visitor.json('/healthz')).statusCode).toBe(200);
      expect((await visitor.json('/readyz')).statusCode).toBe(200);

      // Anonymous visitors are sent to the login page; a logged-in admin reaches the admin area.
      const anonymous = await visitor.get('/admin');
      expect(anonymous.statusCode).toBe(302);
      expect(anonymous.headers.location).toBe('/admin/login?next=%2Fadmin');
      expect((await visitor.get('/admin/login')).statusCode).toBe(200);
      const dashboard = await admin.get('/admin');
      expect(dashboard.statusCode).toBe(200);
      expect(dashboard.body).toContain('on: Back at 5');
      expect((await admin.get('/admin/upgrade')).statusCode).toBe(200);
      // The admin area is reachable; the site's own pages are not, not even for admins.
      await expectUnavailable(admin, '/mod_assign/', 'OUTAGELESS_SITE_MAINTENANCE');

      await setSiteMaintenance(database.db, false);
      await app.outageless.refresh();
      await expectAllServed(visitor, RELEASE_2_ROUTES);
    });

    it('site maintenance without a message uses a default text', async () => {
      await setSiteMaintenance(database.db, true);
      await app.outageless.refresh();
      const body = await expectUnavailable(visitor, '/', 'OUTAGELESS_SITE_MAINTENANCE');
      expect(body.error.message).toMatch(/maintenance/i);
    });

    it('maintenance-mode upgrade running: 503 "Site is being upgraded" on every route, even /admin for admins; 200 once released', async () => {
      held = await database.upgradeLock.tryAcquire('maintenance');
      expect(held).toBeDefined();
      await app.outageless.refresh();

      for (const url of RELEASE_2_ROUTES) {
        const body = await expectUnavailable(visitor, url, 'OUTAGELESS_SITE_UPGRADING');
        expect(body.error.message).toBe('Site is being upgraded, please retry later');
      }
      await expectUnavailablePage(visitor, '/mod_assign/', 'Site is being upgraded, please retry later');
      await expectUnavailablePage(admin, '/admin', 'Site is being upgraded, please retry later');
      await expectUnavailable(admin, '/admin', 'OUTAGELESS_SITE_UPGRADING');
      await expectUnavailable(admin, '/mod_assign/', 'OUTAGELESS_SITE_UPGRADING');
      // The upgrade page stays up for admins, to follow the run; it offers no second run.
      const upgradePage = await admin.get('/admin/upgrade');
      expect(upgradePage.statusCode).toBe(200);
      expect(upgradePage.body).toContain('id="upgrade-running"');
      expect(upgradePage.body).not.toContain('id="upgrade-now"');
      expect((await visitor.json('/healthz')).statusCode).toBe(200);

      await held!.release();
      held = undefined;
      await app.outageless.refresh();
      await expectAllServed(visitor, RELEASE_2_ROUTES);
      expect((await admin.get('/admin')).statusCode).toBe(200);
    });

    it('a running maintenance-mode upgrade wins over site maintenance', async () => {
      await setSiteMaintenance(database.db, true, 'Back at 5');
      held = await database.upgradeLock.tryAcquire('maintenance');
      await app.outageless.refresh();
      await expectUnavailable(visitor, '/', 'OUTAGELESS_SITE_UPGRADING');
      await expectUnavailablePage(admin, '/admin', UPGRADING_MESSAGE);
    });

    it('online-mode upgrade running: the site keeps serving', async () => {
      held = await database.upgradeLock.tryAcquire('online');
      expect(held).toBeDefined();
      await app.outageless.refresh();
      expect(app.outageless.state().upgrade?.mode).toBe('online');
      await expectAllServed(visitor, RELEASE_2_ROUTES);
      expect((await admin.get('/admin')).statusCode).toBe(200);
    });
  });

  describe('release 3 front on the release 2 database: code ahead', () => {
    let app: FastifyInstance;
    let visitor: Client;
    let admin: Client;

    beforeAll(async () => {
      app = await front(3);
      visitor = new Client(app);
      admin = new Client(app);
      await admin.login();
    });

    it('components whose pending change needs maintenance answer 503 UPGRADE_PENDING; class none ones serve', async () => {
      await expectUnavailable(visitor, '/mod_quiz/', 'OUTAGELESS_UPGRADE_PENDING', 'mod_quiz');
      await expectUnavailable(visitor, '/mod_quiz/capabilities', 'OUTAGELESS_UPGRADE_PENDING', 'mod_quiz');
      await expectUnavailable(visitor, '/local_reports/', 'OUTAGELESS_UPGRADE_PENDING', 'local_reports');
      await expectUnavailablePage(visitor, '/mod_quiz/', 'mod_quiz is waiting for an upgrade');
      await expectAllServed(visitor, SAFE_2_TO_3);
      expect((await visitor.json('/')).json()).toEqual({ component: 'core', release: '1.2' });
      // Code ahead is no reason to drain this front.
      expect((await visitor.json('/readyz')).statusCode).toBe(200);
    });

    it('a component that is not installed yet answers 503', async () => {
      const body = await expectUnavailable(visitor, '/block_calendar/', 'OUTAGELESS_UPGRADE_PENDING', 'block_calendar');
      expect(body.error.message).toMatch(/not installed/);
      await expectUnavailable(visitor, '/block_calendar/config', 'OUTAGELESS_UPGRADE_PENDING', 'block_calendar');
    });

    it('admins are sent to the upgrade page: plan with classes and reasons, and an "Upgrade now" button', async () => {
      const dashboard = await admin.get('/admin');
      expect(dashboard.statusCode).toBe(302);
      expect(dashboard.headers.location).toBe('/admin/upgrade');

      const page = await admin.get('/admin/upgrade');
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('id="upgrade-prompt"');
      expect(page.body).toContain('It needs maintenance');
      expect(page.body).toMatch(/<button[^>]*id="upgrade-now"[^>]*>Upgrade now<\/button>/);
      // "Upgrade now" only leads to the confirmation page, which holds the CSRF-protected POST.
      expect(page.body).toMatch(/<form method="get" action="\/admin\/upgrade\/confirm"[^>]*><button[^>]*id="upgrade-now"/);
      const confirm = await admin.get('/admin/upgrade/confirm');
      expect(confirm.statusCode).toBe(200);
      expect(confirm.body).toMatch(/id="upgrade-mode" data-mode="maintenance">Outage class <strong>site<\/strong>/);
      expect(confirm.body).toMatch(/<form method="post" action="\/admin\/upgrade" id="confirm-form">\s*<input type="hidden" name="_csrf" value="[^"]+"><input type="hidden" name="plan" value="[0-9a-f]{32}">/);

      const quiz = planRow(page.body, 'mod_quiz');
      expect(quiz).toContain('class="class-site"');
      expect(quiz).toContain(String(V3));
      expect(quiz).toContain('quiz_grade_not_null');
      expect(quiz).toContain('declares no outage: assumed site');
      const reports = planRow(page.body, 'local_reports');
      expect(reports).toContain('class="class-site"');
      expect(reports).toContain('db/caches.ts');
      expect(reports).toContain('no pending step or metadata hook vouches for it');
      const calendar = planRow(page.body, 'block_calendar');
      expect(calendar).toContain('<td>install</td>');
      expect(calendar).toContain('class="class-none"');
      expect(calendar).toContain('new component');
      const assign = planRow(page.body, 'mod_assign');
      expect(assign).toContain('<td>upgrade</td>');
      expect(assign).toContain(String(V2));
      expect(assign).toContain('class="class-none"');
      expect(assign).toContain('assign_submission_add_latesubmission');
      expect(planRow(page.body, 'core')).toContain('code-only change');
    });

    it('with the UI upgrade lock: every installed component serves, /admin shows the dashboard, no button', async () => {
      await setUiUpgradeLock(database.db, true);
      await app.outageless.refresh();

      await expectAllServed(visitor, [...SAFE_2_TO_3, ...SITE_CLASS_2_TO_3]);
      // Its tables do not exist yet: the new component cannot serve, lock or not.
      await expectUnavailable(visitor, '/block_calendar/', 'OUTAGELESS_UPGRADE_PENDING', 'block_calendar');

      const dashboard = await admin.get('/admin');
      expect(dashboard.statusCode).toBe(200);
      expect(dashboard.body).toContain('id="site-flags"');
      expect(dashboard.body).toContain('UI upgrade lock set');

      const page = await admin.get('/admin/upgrade');
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('id="ui-locked"');
      expect(page.body).not.toContain('id="upgrade-now"');
      expect(page.body).not.toContain('id="upgrade-form"');
      expect(planRow(page.body, 'mod_quiz')).toContain('class="class-site"');

      // A hand-made form post cannot start an upgrade while the lock is set.
      const refused = await admin.post('/admin/upgrade', { _csrf: csrfToken(page.body) });
      expect(refused.statusCode).toBe(409);
      expect((await readInstalled(database.db))?.get('mod_quiz')?.version).toBe(2026010100);
      // The last run shown is still the install, not a web run.
      expect((await admin.json('/admin/upgrade/progress')).json()).toMatchObject({ running: false, run: { startedBy: 'api' } });

      // Clearing the lock brings the guard and the prompt back.
      await setUiUpgradeLock(database.db, false);
      await app.outageless.refresh();
      await expectUnavailable(visitor, '/mod_quiz/', 'OUTAGELESS_UPGRADE_PENDING', 'mod_quiz');
      expect((await admin.get('/admin')).statusCode).toBe(302);
    });
  });

  describe('"Upgrade now" from the release 3 front', () => {
    let app: FastifyInstance;
    let visitor: Client;
    let admin: Client;

    beforeAll(async () => {
      app = await front(3);
      visitor = new Client(app);
      admin = new Client(app);
      await admin.login();
    });

    it('a POST with the page\'s CSRF token starts it; progress ends in success; then every route serves and nothing is pending', async () => {
      await expectUnavailable(visitor, '/mod_quiz/', 'OUTAGELESS_UPGRADE_PENDING');
      const page = await admin.get('/admin/upgrade');
      expect(page.body).toContain('id="upgrade-now"');
      expect((await admin.json('/admin/upgrade/progress')).json()).toMatchObject({ running: false, run: { startedBy: 'api' } });

      const started = await confirmUpgrade(admin);
      expect(started.statusCode, started.body).toBe(303);
      expect(started.headers.location).toMatch(/^\/admin\/upgrade\?run=[0-9a-f-]{36}$/);

      const progress = await pollProgress(admin);
      expect(progress.error).toBeNull();
      expect(progress.outcome).toBe('succeeded');
      const log = progress.lines.join('\n');
      expect(log).toContain('Upgrade started (maintenance mode)');
      expect(log).toContain('mod_quiz: step quiz_grade_not_null');
      expect(log).toContain('block_calendar: installing');
      expect(progress.lines.at(-1)).toMatch(/^Upgrade complete/);

      const installed = await readInstalled(database.db);
      expect(installed?.get('mod_quiz')?.version).toBe(V3);
      expect(installed?.get('block_calendar')?.version).toBe(V3);

      // The front refreshed itself after the run: no refresh() from the test here.
      await expectAllServed(visitor, [...SAFE_2_TO_3, ...SITE_CLASS_2_TO_3, '/block_calendar/', '/block_calendar/config']);
      expect((await visitor.json('/readyz')).statusCode).toBe(200);
      expect((await admin.get('/admin')).statusCode).toBe(200);
      const after = await admin.get('/admin/upgrade');
      expect(after.statusCode).toBe(200);
      expect(after.body).toContain('No upgrade is pending');
      expect(after.body).toContain('Every component is up to date');
      expect(after.body).not.toContain('id="upgrade-now"');
      expect(after.body).toMatch(/id="upgrade-outcome">succeeded</);

      // Pressing again has nothing to do.
      const again = await admin.post('/admin/upgrade', { _csrf: csrfToken(after.body) });
      expect(again.statusCode).toBe(409);
      expect(again.body).toContain('No upgrade is pending');
    });

    it('a POST while another upgrade holds the lock is refused', async () => {
      held = await database.upgradeLock.tryAcquire('online');
      expect(held).toBeDefined();
      await app.outageless.refresh();
      const page = await admin.get('/admin/upgrade');
      expect(page.body).not.toContain('id="upgrade-now"');
      const refused = await admin.post('/admin/upgrade', { _csrf: csrfToken(page.body) });
      expect(refused.statusCode).toBe(409);
      expect(refused.body).toContain('Another upgrade is running');
    });
  });

  describe('release 2 and release 1 fronts after the 2 -> 3 upgrade: code behind a breaking change', () => {
    let visitor: Client;
    let oldest: Client;

    beforeAll(async () => {
      await refreshAll();
      visitor = new Client(await front(2));
      oldest = new Client(await front(1));
    });

    it('mod_quiz and local_reports answer 503 CODE_BEHIND, the rest serves, /readyz is 503 listing them', async () => {
      await expectUnavailable(visitor, '/mod_quiz/', 'OUTAGELESS_CODE_BEHIND', 'mod_quiz');
      await expectUnavailable(visitor, '/mod_quiz/capabilities', 'OUTAGELESS_CODE_BEHIND', 'mod_quiz');
      await expectUnavailable(visitor, '/local_reports/', 'OUTAGELESS_CODE_BEHIND', 'local_reports');
      await expectUnavailablePage(visitor, '/mod_quiz/', 'older code');
      await expectAllServed(visitor, SAFE_2_TO_3);
      expect((await visitor.json('/healthz')).statusCode).toBe(200);

      const ready = await visitor.json('/readyz');
      expect(ready.statusCode).toBe(503);
      expect(ready.json<{ components: string[] }>().components.toSorted()).toEqual(['local_reports', 'mod_quiz']);

      // The release 1 front is behind the same breaking changes.
      await expectUnavailable(oldest, '/mod_quiz/', 'OUTAGELESS_CODE_BEHIND', 'mod_quiz');
      await expectServed(oldest, '/mod_assign/');
      expect((await oldest.json('/readyz')).statusCode).toBe(503);
    });

    it('the UI upgrade lock does not make a breaking change safe', async () => {
      await setUiUpgradeLock(database.db, true);
      await refreshAll();
      await expectUnavailable(visitor, '/mod_quiz/', 'OUTAGELESS_CODE_BEHIND', 'mod_quiz');
      await expectUnavailable(visitor, '/local_reports/', 'OUTAGELESS_CODE_BEHIND', 'local_reports');
    });
  });
});

// ---------------------------------------------------------------------------------------
// PostgreSQL: the same rules, with the state arriving by LISTEN/NOTIFY (no refresh() calls)

describe.skipIf(!postgresAvailable)('fronts on PostgreSQL follow the state through LISTEN/NOTIFY', () => {
  let scratch: ScratchDatabase;
  let database: SiteDatabase;
  /** Release 2 code on a release 2 database; later the old front of a 2 -> 3 rollout. */
  let current: FastifyInstance;
  /** Release 3 code: ahead of the database until the web upgrade. */
  let ahead: FastifyInstance;
  let visitor: Client;
  let aheadVisitor: Client;
  let admin: Client;
  let aheadAdmin: Client;
  let held: HeldUpgradeLock | undefined;

  beforeAll(async () => {
    scratch = await createScratchDatabase('fastify_guard');
    database = await openDatabase(scratch.url);
    await upgradeTo(database, 2);
    // Polling far slower than the 2 s budget: only a NOTIFY can deliver the state in time.
    current = await startFront(database, 2, { pollIntervalMs: 600_000 });
    ahead = await startFront(database, 3, { pollIntervalMs: 600_000 });
    visitor = new Client(current);
    aheadVisitor = new Client(ahead);
    admin = new Client(current);
    await admin.login();
    aheadAdmin = new Client(ahead);
    await aheadAdmin.login();
  });

  afterEach(async () => {
    // A failed test must not leave its state to the next one.
    await held?.release();
    held = undefined;
    await setSiteMaintenance(database.db, false);
    await setUiUpgradeLock(database.db, false);
    await current.outageless.refresh();
    await ahead.outageless.refresh();
  });

  afterAll(async () => {
    await current?.close();
    await ahead?.close();
    await database?.close();
    await scratch?.drop();
  });

  it('normal: routes, /healthz and /readyz answer 200', async () => {
    await expectAllServed(visitor, RELEASE_2_ROUTES);
    expect((await visitor.json('/healthz')).statusCode).toBe(200);
    expect((await visitor.json('/readyz')).statusCode).toBe(200);
  });

  it('site maintenance reaches the front by NOTIFY, and so does its end', async () => {
    await setSiteMaintenance(database.db, true, 'Back at 5');
    await eventually(async () => {
      const body = await expectUnavailable(visitor, '/mod_assign/', 'OUTAGELESS_SITE_MAINTENANCE');
      expect(body.error.message).toBe('Back at 5');
    });
    await expectUnavailable(visitor, '/', 'OUTAGELESS_SITE_MAINTENANCE');
    await expectUnavailablePage(visitor, '/', 'Back at 5');
    expect((await visitor.json('/healthz')).statusCode).toBe(200);
    expect((await admin.get('/admin')).statusCode).toBe(200);
    expect((await visitor.get('/admin')).statusCode).toBe(302);

    await setSiteMaintenance(database.db, false);
    await eventually(() => expectAllServed(visitor, RELEASE_2_ROUTES));
  });

  it('a maintenance-mode upgrade holding the advisory lock: 503 SITE_UPGRADING, then 200 after it ends', async () => {
    held = await database.upgradeLock.tryAcquire('maintenance');
    expect(held).toBeDefined();
    // What runUpgrade sends once it holds the lock.
    await notifyStateChanged(database.db, 'upgrade-started');
    await eventually(() => expectUnavailable(visitor, '/mod_assign/', 'OUTAGELESS_SITE_UPGRADING').then(() => {}));
    await expectUnavailablePage(visitor, '/', UPGRADING_MESSAGE);
    await expectUnavailablePage(admin, '/admin', UPGRADING_MESSAGE);
    expect(current.outageless.state().upgrade).toMatchObject({ mode: 'maintenance', pid: process.pid });

    await held!.release();
    held = undefined;
    await notifyStateChanged(database.db, 'upgrade-finished');
    await eventually(() => expectAllServed(visitor, RELEASE_2_ROUTES));
  });

  it('an online-mode upgrade holding the lock: routes keep serving', async () => {
    held = await database.upgradeLock.tryAcquire('online');
    expect(held).toBeDefined();
    await notifyStateChanged(database.db, 'upgrade-started');
    await eventually(async () => expect(current.outageless.state().upgrade?.mode).toBe('online'));
    await expectAllServed(visitor, RELEASE_2_ROUTES);
  });

  it('a killed upgrader sends no NOTIFY: polling still notices the lock come and go', async () => {
    const polling = await startFront(database, 2, { pollIntervalMs: 100 });
    try {
      const client = new Client(polling);
      held = await database.upgradeLock.tryAcquire('maintenance');
      await eventually(() => expectUnavailable(client, '/', 'OUTAGELESS_SITE_UPGRADING').then(() => {}));
      await held!.release();
      held = undefined;
      await eventually(() => expectServed(client, '/'));
    } finally {
      await polling.close();
    }
  });

  it('code ahead: site-class components and the new one answer 503; the UI lock arrives by NOTIFY', async () => {
    for (const url of SITE_CLASS_2_TO_3) await expectUnavailable(aheadVisitor, url, 'OUTAGELESS_UPGRADE_PENDING');
    await expectUnavailable(aheadVisitor, '/block_calendar/', 'OUTAGELESS_UPGRADE_PENDING', 'block_calendar');
    await expectAllServed(aheadVisitor, SAFE_2_TO_3);
    expect((await aheadAdmin.get('/admin')).headers.location).toBe('/admin/upgrade');

    await setUiUpgradeLock(database.db, true);
    try {
      await eventually(() => expectAllServed(aheadVisitor, [...SAFE_2_TO_3, ...SITE_CLASS_2_TO_3]));
      await expectUnavailable(aheadVisitor, '/block_calendar/', 'OUTAGELESS_UPGRADE_PENDING', 'block_calendar');
      expect((await aheadAdmin.get('/admin')).statusCode).toBe(200);
      expect((await aheadAdmin.get('/admin/upgrade')).body).not.toContain('id="upgrade-now"');
    } finally {
      await setUiUpgradeLock(database.db, false);
    }
    await eventually(() => expectUnavailable(aheadVisitor, '/mod_quiz/', 'OUTAGELESS_UPGRADE_PENDING').then(() => {}));
  });

  it('web upgrade from the release 3 front: it then serves everything, and the release 2 front drains', async () => {
    const started = await confirmUpgrade(aheadAdmin);
    expect(started.statusCode, started.body).toBe(303);
    const progress = await pollProgress(aheadAdmin);
    expect(progress.error, JSON.stringify(progress)).toBeNull();
    expect(progress.outcome, JSON.stringify(progress)).toBe('succeeded');

    await expectAllServed(aheadVisitor, [...SAFE_2_TO_3, ...SITE_CLASS_2_TO_3, '/block_calendar/']);
    expect((await aheadAdmin.get('/admin/upgrade')).body).toContain('No upgrade is pending');

    // The release 2 front learns of the breaking change from the upgrader's NOTIFY.
    await eventually(() => expectUnavailable(visitor, '/mod_quiz/', 'OUTAGELESS_CODE_BEHIND', 'mod_quiz').then(() => {}));
    await expectUnavailable(visitor, '/local_reports/', 'OUTAGELESS_CODE_BEHIND', 'local_reports');
    await expectAllServed(visitor, SAFE_2_TO_3);
    const ready = await visitor.json('/readyz');
    expect(ready.statusCode).toBe(503);
    expect(ready.json<{ components: string[] }>().components.toSorted()).toEqual(['local_reports', 'mod_quiz']);
  });
});
