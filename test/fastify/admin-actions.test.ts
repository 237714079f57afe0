/**
 * The admin console's actions (src/fastify/admin-actions.ts) on PostgreSQL, through Fastify
 * `inject`: site maintenance, pause/resume, cache purges and the UI upgrade lock. Each is done
 * (303, the database changed, the site answers accordingly), refused under the CLI's rules
 * (409 or 400 with the coded error, nothing changed), refused without a valid CSRF token (403,
 * nothing changed, nothing logged), and recorded in outageless_admin_action. The CLI records
 * its own actions in the same table (actor cli).
 *
 * The site is release 4 of the example: mod_assign may pause on its own, its subplugin
 * assignsubmission_file and block_news (not disableable) and core may not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { outageless } from '../../src/fastify/plugin.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { setComponentState } from '../../src/state/component-state.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';

const SECRET = 'admin-actions test secret';

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

/** Whole-second mtimes: vitest takes a dot in the loader's cache-busting query for an extension (see admin-security.test.ts). */
async function wholeSecondMtimes(dir: string): Promise<void> {
  const when = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), when, when);
  }
}

let clients = 0;

/** A browser for `inject`: keeps cookies, comes from its own address. */
class Client {
  readonly cookies = new Map<string, string>();
  readonly address = `10.20.0.${++clients}`;
  readonly app: FastifyInstance;
  constructor(app: FastifyInstance) {
    this.app = app;
  }

  async request(method: 'GET' | 'POST', url: string, form?: Record<string, string>, accept = 'text/html'): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await this.app.inject({ method, url, headers, remoteAddress: this.address, ...(form ? { payload: new URLSearchParams(form).toString() } : {}) });
    const lines = response.headers['set-cookie'];
    for (const line of lines === undefined ? [] : Array.isArray(lines) ? lines : [lines]) {
      const [pair = ''] = line.split(';');
      const index = pair.indexOf('=');
      const value = pair.slice(index + 1).trim();
      if (!value || /max-age=0/i.test(line)) this.cookies.delete(pair.slice(0, index).trim());
      else this.cookies.set(pair.slice(0, index).trim(), value);
    }
    return response;
  }

  get(url: string): Promise<Response> {
    return this.request('GET', url);
  }

  post(url: string, form: Record<string, string>, accept?: string): Promise<Response> {
    return this.request('POST', url, form, accept);
  }

  async login(): Promise<void> {
    const page = await this.get('/admin/login');
    const response = await this.post('/admin/login', { _csrf: token(page.body), password: SECRET, next: '/admin' });
    expect(response.statusCode).toBe(303);
  }

  /** The dashboard's CSRF token (opening it also sets the CSRF cookie). */
  async token(): Promise<string> {
    const page = await this.get('/admin');
    expect(page.statusCode, page.body.slice(0, 300)).toBe(200);
    return token(page.body);
  }

  /** Posts one of the dashboard's forms with a fresh token. */
  async act(action: string, form: Record<string, string>, accept?: string): Promise<Response> {
    return this.post(`/admin/actions/${action}`, { _csrf: await this.token(), ...form }, accept);
  }
}

function token(body: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no CSRF token in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

describe.skipIf(!postgresAvailable)('admin console actions (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  let app: FastifyInstance;
  let admin: Client;

  const query = async <T = Record<string, unknown>>(text: string): Promise<T[]> => (await sql.raw<T>(text).execute(database.db)).rows;
  const paused = () => query<{ component: string; state: string; paused_by_run: string | null }>('select component, state, paused_by_run from outageless_component_state order by component');
  const flags = async () => Object.fromEntries((await query<{ name: string; value: unknown }>('select name, value from outageless_flag')).map((r) => [r.name, r.value]));
  const actions = () => query<{ actor: string; session_id: string | null; client: string; action: string; target: string | null; outcome: string; error_code: string | null; detail: string | null }>(
    'select actor, session_id, client, action, target, outcome, error_code, detail from outageless_admin_action order by id');
  /** The rows logged since `before` rows were there. */
  const loggedSince = async (before: number) => (await actions()).slice(before);
  const sessionHash = () => query<{ id: string }>('select id from outageless_admin_session');

  beforeAll(async () => {
    scratch = await createScratchDatabase('admin_actions');
    site = await createSiteDir(4);
    await wholeSecondMtimes(join(site.root, 'core'));
    await wholeSecondMtimes(join(site.root, 'plugins'));
    database = await openDatabase(scratch.url);
    await runUpgrade({ database, code: await discoverSite(site.root), mode: 'maintenance' });
    app = Fastify();
    await app.register(outageless, { root: site.root, database, adminSecret: SECRET, jobs: false, pollIntervalMs: 250, heartbeatMs: 60_000 });
    await app.ready();
    admin = new Client(app);
    await admin.login();
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await database?.close();
    await site?.cleanup();
    await scratch?.drop();
  });

  it('the dashboard lists every component with versions, release, increment, state and its buttons; times are <time> tags; fronts are named by URL', async () => {
    const page = await admin.get('/admin');
    expect(page.statusCode).toBe(200);
    const row = (component: string) => new RegExp(`<tr data-component="${component}">([\\s\\S]*?)</tr>`).exec(page.body)?.[1] ?? '';
    expect(row('mod_assign')).toContain('<td>2026040100</td><td>2026040100</td>');
    expect(row('mod_assign')).toContain('<td>1.3</td>');
    expect(row('mod_assign')).toContain('data-state="normal"');
    expect(row('mod_assign')).toContain('action="/admin/actions/pause"');
    // No pause button where the CLI would refuse one; every component can purge its caches.
    for (const component of ['core', 'block_news', 'assignsubmission_file']) {
      expect(row(component), component).not.toContain('/admin/actions/pause');
      expect(row(component), component).toContain('/admin/actions/purge-caches');
    }
    expect(page.body).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC<\/time>/);
    expect(page.body).toContain('<script src="/admin/assets/local-time.js" defer></script>');
    expect(page.body).toContain('<a href="/admin/history">History</a>');
    // An injected front has no URL: host and pid, and says so.
    expect(page.body).toMatch(/<tr data-front="[^"]+"><td>[^<]+, pid \d+ \(no URL yet\) — this front<\/td>/);
    expect(page.body).toContain('id="maintenance-on"');
    expect(page.body).toContain('id="ui-lock-set"');
    expect(page.body).toContain('id="purge-all"');
    const script = await admin.get('/admin/assets/local-time.js');
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.body).toContain("querySelectorAll('time[datetime]')");
  });

  it('pause: mod_assign answers 503 and shows paused; resume: 200 again; both recorded with the session and address', async () => {
    const before = (await actions()).length;
    expect((await app.inject('/mod_assign/')).statusCode).toBe(200);
    const pause = await admin.act('pause', { component: 'mod_assign' });
    expect(pause.statusCode, pause.body).toBe(303);
    expect(pause.headers.location).toBe('/admin');
    expect(await paused()).toEqual([{ component: 'mod_assign', state: 'maintenance', paused_by_run: null }]);
    expect((await app.inject('/mod_assign/')).statusCode).toBe(503);
    // Its subplugin pauses with it; the rest of the site serves.
    expect((await app.inject('/block_news/')).statusCode).toBe(200);
    const page = await admin.get('/admin');
    expect(/<tr data-component="mod_assign">([\s\S]*?)<\/tr>/.exec(page.body)?.[1]).toMatch(/data-state="paused">paused, since <time/);
    expect(page.body).toMatch(/<tr data-component="mod_assign">[\s\S]*?action="\/admin\/actions\/resume"/);

    const resume = await admin.act('resume', { component: 'mod_assign' });
    expect(resume.statusCode, resume.body).toBe(303);
    expect(await paused()).toEqual([]);
    expect((await app.inject('/mod_assign/')).statusCode).toBe(200);

    const [hash] = await sessionHash();
    expect(await loggedSince(before)).toEqual([
      { actor: 'web', session_id: hash!.id, client: admin.address, action: 'pause', target: 'mod_assign', outcome: 'done', error_code: null, detail: null },
      { actor: 'web', session_id: hash!.id, client: admin.address, action: 'resume', target: 'mod_assign', outcome: 'done', error_code: null, detail: null },
    ]);
    const recent = await admin.get('/admin');
    expect(recent.body).toMatch(/<table id="recent-actions">[\s\S]*<tr data-action="resume" data-outcome="done">/);
  });

  it('pause is refused as the CLI refuses it: core, a subplugin, a component without disableable (409), an unknown one (400); nothing changes', async () => {
    const before = (await actions()).length;
    const cases = [
      { component: 'core', status: 409, code: 'OUTAGELESS_ERR_NOT_DISABLEABLE', text: 'core cannot pause on its own' },
      { component: 'assignsubmission_file', status: 409, code: 'OUTAGELESS_ERR_NOT_DISABLEABLE', text: 'assignsubmission_file is a subplugin: it pauses with its parent mod_assign' },
      { component: 'block_news', status: 409, code: 'OUTAGELESS_ERR_NOT_DISABLEABLE', text: 'does not declare maintenance: { disableable: true }' },
      { component: 'mod_nope', status: 400, code: 'OUTAGELESS_ERR_UNKNOWN_COMPONENT', text: 'no component &quot;mod_nope&quot; on disk' },
    ];
    for (const refusal of cases) {
      const response = await admin.act('pause', { component: refusal.component });
      expect(response.statusCode, refusal.component).toBe(refusal.status);
      expect(response.body).toContain(`data-code="${refusal.code}"`);
      expect(response.body).toContain(refusal.text);
      expect((await app.inject(refusal.component === 'core' ? '/' : `/${refusal.component}/`)).statusCode).not.toBe(503);
    }
    expect(await paused()).toEqual([]);
    expect((await loggedSince(before)).map((row) => [row.action, row.target, row.outcome, row.error_code])).toEqual(cases.map((c) => ['pause', c.component, 'refused', c.code]));
    // A form without a component is bad input too, and logged.
    const empty = await admin.act('resume', {});
    expect(empty.statusCode).toBe(400);
    expect(empty.body).toContain('data-code="OUTAGELESS_ERR_USAGE"');
    expect((await loggedSince(before)).at(-1)).toMatchObject({ action: 'resume', target: null, outcome: 'refused', error_code: 'OUTAGELESS_ERR_USAGE' });
  });

  it('a pause a running upgrade holds is neither resumed nor re-paused (409), and is once the run is gone', async () => {
    const held = await database.upgradeLock.tryAcquire('online');
    expect(held).toBeDefined();
    try {
      await setComponentState(database.db, 'mod_assign', 'maintenance', { reason: 'staged upgrade', pausedByRun: held!.runId });
      await app.outageless.refresh();
      for (const action of ['resume', 'pause']) {
        const response = await admin.act(action, { component: 'mod_assign' });
        expect(response.statusCode, action).toBe(409);
        expect(response.body).toContain('data-code="OUTAGELESS_ERR_COMPONENT_HELD_BY_UPGRADE"');
        expect(response.body).toContain(`mod_assign is paused by upgrade run ${held!.runId}, which is still running; nothing was changed`);
      }
      expect(await paused()).toEqual([{ component: 'mod_assign', state: 'maintenance', paused_by_run: held!.runId }]);
      // The dashboard offers no button for it.
      expect(/<tr data-component="mod_assign">([\s\S]*?)<\/tr>/.exec((await admin.get('/admin')).body)?.[1]).not.toMatch(/actions\/(pause|resume)/);
    } finally {
      await held!.release();
    }
    // What the run left behind once it is gone (a staged upgrade's post-install) is the operator's to end.
    await setComponentState(database.db, 'mod_assign', 'post-install');
    await app.outageless.refresh();
    const cell = /<tr data-component="mod_assign">([\s\S]*?)<\/tr>/.exec((await admin.get('/admin')).body)?.[1] ?? '';
    expect(cell).toContain('data-state="post-install">post-install (admins only)');
    expect(cell).toContain('action="/admin/actions/resume"');
    const resume = await admin.act('resume', { component: 'mod_assign' });
    expect(resume.statusCode, resume.body).toBe(303);
    expect(await paused()).toEqual([]);
  });

  it('site maintenance on with a message: the site answers 503 with it, the admin area stays; off again; a bad form is 400', async () => {
    const before = (await actions()).length;
    const on = await admin.act('maintenance', { enabled: 'on', message: 'Back at 10:00' });
    expect(on.statusCode, on.body).toBe(303);
    expect((await flags()).maintenance).toEqual({ enabled: true, message: 'Back at 10:00' });
    const site503 = await app.inject({ url: '/mod_assign/', headers: { accept: 'text/html' } });
    expect(site503.statusCode).toBe(503);
    expect(site503.body).toContain('Back at 10:00');
    const page = await admin.get('/admin');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('id="maintenance-off"');

    const off = await admin.act('maintenance', { enabled: 'off' });
    expect(off.statusCode).toBe(303);
    expect((await flags()).maintenance).toEqual({ enabled: false, message: null });
    expect((await app.inject('/mod_assign/')).statusCode).toBe(200);

    for (const form of [{ enabled: 'maybe' }, { enabled: 'on', message: 'x'.repeat(501) }] as Record<string, string>[]) {
      const bad = await admin.act('maintenance', form);
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('data-code="OUTAGELESS_ERR_USAGE"');
    }
    expect((await flags()).maintenance).toEqual({ enabled: false, message: null });
    expect((await loggedSince(before)).map((row) => [row.action, row.outcome, row.detail?.slice(0, 40) ?? null])).toEqual([
      ['maintenance-on', 'done', 'Back at 10:00'],
      ['maintenance-off', 'done', null],
      ['maintenance-on', 'refused', 'enabled must be "on" or "off", got "mayb'],
      ['maintenance-on', 'refused', 'the maintenance message is 501 character'],
    ]);
  });

  it('purge caches: all moves the global revision, one component only its own; an unknown component is 400 and moves nothing', async () => {
    const before = (await actions()).length;
    const revision = async () => Number((await flags()).cache_revision ?? 0);
    const own = async (component: string) => Number((await query<{ revision: string }>(`select revision from outageless_cache_revision where component = '${component}'`))[0]?.revision ?? 0);
    const [global0, assign0] = [await revision(), await own('mod_assign')];
    expect((await admin.act('purge-caches', { component: '' })).statusCode).toBe(303);
    expect(await revision()).toBe(global0 + 1);
    expect((await admin.act('purge-caches', { component: 'mod_assign' })).statusCode).toBe(303);
    expect(await own('mod_assign')).toBe(assign0 + 1);
    expect(await revision()).toBe(global0 + 1);
    const unknown = await admin.act('purge-caches', { component: 'mod_nope' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.body).toContain('data-code="OUTAGELESS_ERR_UNKNOWN_COMPONENT"');
    expect(await revision()).toBe(global0 + 1);
    expect(await query(`select * from outageless_cache_revision where component = 'mod_nope'`)).toEqual([]);
    expect((await loggedSince(before)).map((row) => [row.action, row.target, row.outcome])).toEqual([
      ['purge-caches', 'all', 'done'], ['purge-caches', 'mod_assign', 'done'], ['purge-caches', 'mod_nope', 'refused'],
    ]);
  });

  it('UI upgrade lock: set and clear; a bad value is 400; JSON clients get JSON', async () => {
    const set = await admin.act('ui-lock', { lock: 'set' }, 'application/json');
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ ok: true, message: 'UI upgrade lock set.' });
    expect((await flags()).ui_upgrade_lock).toBe(true);
    expect((await admin.get('/admin')).body).toContain('id="ui-lock-clear"');
    const bad = await admin.act('ui-lock', { lock: 'sometimes' }, 'application/json');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'OUTAGELESS_ERR_USAGE', message: 'lock must be "set" or "clear", got "sometimes"' } });
    expect((await flags()).ui_upgrade_lock).toBe(true);
    expect((await admin.act('ui-lock', { lock: 'clear' })).statusCode).toBe(303);
    expect((await flags()).ui_upgrade_lock).toBe(false);
    expect((await actions()).slice(-3).map((row) => [row.action, row.outcome])).toEqual([['ui-lock-set', 'done'], ['ui-lock-set', 'refused'], ['ui-lock-clear', 'done']]);
  });

  it('without a valid CSRF token every action is 403 and changes and logs nothing; anonymous is 401', async () => {
    const before = (await actions()).length;
    const other = new Client(app);
    await other.login();
    const othersToken = await other.token();
    await admin.token();
    const forms: [string, Record<string, string>][] = [
      ['pause', { component: 'mod_assign' }], ['maintenance', { enabled: 'on', message: 'forged' }],
      ['purge-caches', { component: '' }], ['ui-lock', { lock: 'set' }], ['resume', { component: 'mod_assign' }],
    ];
    const snapshot = async () => ({ paused: await paused(), flags: await flags() });
    const start = await snapshot();
    for (const [action, form] of forms) {
      for (const csrf of [undefined, 'forged-token', othersToken]) {
        const response = await admin.post(`/admin/actions/${action}`, csrf === undefined ? form : { ...form, _csrf: csrf });
        expect(response.statusCode, `${action} with ${csrf ?? 'no'} token`).toBe(403);
      }
      const anonymous = await new Client(app).post(`/admin/actions/${action}`, { ...form, _csrf: othersToken }, 'application/json');
      expect(anonymous.statusCode).toBe(401);
    }
    expect(await snapshot()).toEqual(start);
    expect(await loggedSince(before)).toEqual([]);
    // The session's own token still works.
    expect((await admin.act('purge-caches', { component: 'block_news' })).statusCode).toBe(303);
    expect((await loggedSince(before)).map((row) => row.session_id)).toEqual([createHash('sha256').update(sessionId(admin)).digest('hex')]);
  });

  it('the CLI records its actions too (actor cli): a refused pause exits 1 and is logged; a done one is', async () => {
    const before = (await actions()).length;
    const args = ['--root', site.root, '--database', scratch.url];
    const refused = await cli(['maintenance', 'enable', '--component', 'block_news', ...args]);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_NOT_DISABLEABLE');
    const purged = await cli(['purge-caches', '--component', 'mod_assign', ...args]);
    expect(purged.code, purged.stderr).toBe(0);
    const logged = await loggedSince(before);
    expect(logged.map((row) => [row.actor, row.session_id, row.action, row.target, row.outcome, row.error_code])).toEqual([
      ['cli', null, 'pause', 'block_news', 'refused', 'OUTAGELESS_ERR_NOT_DISABLEABLE'],
      ['cli', null, 'purge-caches', 'mod_assign', 'done', null],
    ]);
    expect(logged[0]!.client).toMatch(/^.+@.+ pid \d+$/);
    expect(await paused()).toEqual([]);
    // The message limit is the CLI's too: a bad command line, nothing enabled.
    const long = await cli(['maintenance', 'enable', '--message', 'x'.repeat(501), ...args]);
    expect(long.code).toBe(64);
    expect(long.stderr).toContain('OUTAGELESS_ERR_USAGE: the maintenance message is 501 characters long; at most 500 fit the 503 page');
    expect((await flags()).maintenance).toEqual({ enabled: false, message: null });
    // A drain timeout that is not a number is a bad command line (64), refused before the pause.
    const badDrain = await cli(['maintenance', 'enable', '--component', 'mod_assign', '--drain-timeout', 'soon', ...args]);
    expect(badDrain.code).toBe(64);
    expect(badDrain.stderr).toContain('OUTAGELESS_ERR_USAGE: --drain-timeout expects a number of seconds, got "soon"');
    expect(await paused()).toEqual([]);
    expect((await loggedSince(before)).map((row) => [row.action, row.outcome, row.error_code])).toEqual([
      ['pause', 'refused', 'OUTAGELESS_ERR_NOT_DISABLEABLE'], ['purge-caches', 'done', null], ['maintenance-on', 'refused', 'OUTAGELESS_ERR_USAGE'],
    ]);
  }, 60_000);
});

/** The session id inside the signed cookie `admin.<issued>.<id>.<signature>`. */
function sessionId(client: Client): string {
  const value = decodeURIComponent(client.cookies.get('outageless_admin')!);
  return value.split('.')[2]!;
}
