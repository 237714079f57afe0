/**
 * Issue 11, "Admin surface" (items 17–20), through `app.inject` on the real plugin:
 * - 17: login attempts are limited per client address, with backoff, and refusals are logged;
 * - 18: sessions live in `outageless_admin_session`: logout and a change of secret revoke them;
 * - 19: the CSRF token is bound to the session and renewed at login;
 * - 20: `Secure` cookies behind HTTPS / a trusted proxy, security headers on every page,
 *   session timestamps from the future refused.
 *
 * Runs on PGlite, and on PostgreSQL when TEST_DATABASE_URL reaches a server. The site is
 * release 2 plus `local_evil`, whose install throws: an upgrade is pending the whole time, so
 * a POST that got past the CSRF check would start a run, which the progress endpoint shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { sign } from '@fastify/cookie';
import { sql } from 'kysely';
import { outageless, type OutagelessPluginOptions } from '../../src/fastify/plugin.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { setSiteMaintenance } from '../../src/state/flags.ts';
import { setComponentState } from '../../src/state/component-state.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { createSiteDir, type SiteDir } from '../support/sites.ts';

const SECRET = 'admin-hardening test secret';
const SESSION = 'outageless_admin';
const CSRF = 'outageless_csrf';

/** See test/fastify/admin-security.test.ts: whole-second mtimes keep vitest's loader happy. */
async function wholeSecondMtimes(dir: string): Promise<void> {
  const when = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), when, when);
  }
}

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

function setCookieLines(response: Response): string[] {
  const header = response.headers['set-cookie'];
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}
const setCookieLine = (response: Response, name: string) => setCookieLines(response).find((line) => line.startsWith(`${name}=`));

let nextAddress = 1;
/** A fresh client address per browser, so the login limit of one test does not reach another. */
const freshAddress = () => `10.11.${Math.floor(nextAddress / 250)}.${(nextAddress++ % 250) + 1}`;

/** A browser for `app.inject` from one client address: keeps the cookies it is sent. */
class Client {
  readonly cookies = new Map<string, string>();
  readonly app: FastifyInstance;
  readonly address: string;
  readonly headers: Record<string, string>;
  constructor(app: FastifyInstance, address = freshAddress(), headers: Record<string, string> = {}) {
    this.app = app;
    this.address = address;
    this.headers = headers;
  }

  async request(method: 'GET' | 'POST', url: string, form?: Record<string, string>, accept = 'text/html'): Promise<Response> {
    const headers: Record<string, string> = { accept, ...this.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await this.app.inject({ method, url, headers, remoteAddress: this.address, ...(form ? { payload: new URLSearchParams(form).toString() } : {}) });
    for (const line of setCookieLines(response)) {
      const [pair = '', ...attributes] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) < Date.now()));
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  get(url: string, accept?: string): Promise<Response> {
    return this.request('GET', url, undefined, accept);
  }
  post(url: string, form: Record<string, string>): Promise<Response> {
    return this.request('POST', url, form);
  }
  async token(url = '/admin/login'): Promise<string> {
    const page = await this.get(url);
    expect(page.statusCode, page.body).toBe(200);
    return csrfToken(page.body);
  }
  async login(secret = SECRET): Promise<Response> {
    const token = await this.token();
    return this.post('/admin/login', { _csrf: token, password: secret, next: '/admin' });
  }
  /** True when /admin serves this client as an admin (the JSON progress endpoint answers 200). */
  async isAdmin(): Promise<boolean> {
    const progress = await this.get('/admin/upgrade/progress', 'application/json');
    expect([200, 401]).toContain(progress.statusCode);
    return progress.statusCode === 200;
  }
}

function csrfToken(body: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no CSRF token in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

const databases = [
  { name: 'PGlite', available: true },
  { name: 'PostgreSQL', available: postgresAvailable },
] as const;
if (!postgresAvailable) console.warn('[admin-hardening] PostgreSQL unavailable: its half of this file is SKIPPED.');

describe.each(databases)('admin hardening on $name', ({ name, available }) => {
  let site: SiteDir;
  let scratch: ScratchDatabase | undefined;
  let database: SiteDatabase;
  const fronts: FastifyInstance[] = [];
  /** Log lines (pino JSON) of the fronts started with `logLines`. */
  const logLines: Record<string, unknown>[] = [];
  let app: FastifyInstance;

  async function startFront(options: Partial<OutagelessPluginOptions> = {}, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
    const front = Fastify({ ...server, logger: { level: 'info', stream: { write: (line: string) => void logLines.push(JSON.parse(line)) } } });
    await front.register(outageless, { root: site.root, database, adminSecret: SECRET, pollIntervalMs: 250, heartbeatMs: 60_000, jobs: false, ...options });
    await front.ready();
    fronts.push(front);
    return front;
  }

  const sessionRows = async () =>
    (await sql<{ id: string; secret_fingerprint: string }>`select id, secret_fingerprint from outageless_admin_session order by created_at`.execute(database.db)).rows;

  /** Nothing has started an upgrade (checked by a fresh admin, so it proves nothing else). */
  async function expectNoUpgradeStarted(): Promise<void> {
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    const progress = await admin.get('/admin/upgrade/progress', 'application/json');
    // The last run is still the install (run by runUpgrade), not one from the web.
    expect(progress.json()).toMatchObject({ running: false, run: { startedBy: 'api' } });
  }

  beforeAll(async () => {
    if (!available) return;
    site = await createSiteDir(2);
    await wholeSecondMtimes(join(site.root, 'core'));
    await wholeSecondMtimes(join(site.root, 'plugins'));
    if (name === 'PostgreSQL') {
      scratch = await createScratchDatabase('admin_hardening');
      database = await openDatabase(scratch.url);
    } else {
      database = await openDatabase(`pglite://memory/admin-hardening-${randomBytes(4).toString('hex')}`);
    }
    await runUpgrade({ database, code: await discoverSite(site.root), mode: 'maintenance' });
    await site.write('plugins/local/evil/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_evil', version: 2026020100, release: '1.1', requires: 2026010100, maturity: 'stable' });
`);
    await site.write('plugins/local/evil/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({ tables: { local_evil_item: { columns: { id: { type: 'bigint', autoIncrement: true } }, primaryKey: ['id'] } } });
`);
    await site.write('plugins/local/evil/db/install.ts', `import { defineInstall } from 'outageless';
export default defineInstall(async () => { throw new Error('install refused'); });
`);
    await wholeSecondMtimes(join(site.root, 'plugins', 'local', 'evil'));
    app = await startFront();
    expect(app.outageless.view().pending).toBe(true);
  });

  afterAll(async () => {
    for (const front of fronts) await front.close();
    await database?.close();
    await scratch?.drop();
    await site?.cleanup();
  });

  describe.skipIf(!available)('17: login rate limit', () => {
    it('a burst of 60 wrong secrets from one address gets 5 answers; the rest are refused with 429, Retry-After and a log line', async () => {
      const attacker = new Client(app);
      const token = await attacker.token();
      const attempts = await Promise.all(Array.from({ length: 60 }, (_, i) => attacker.post('/admin/login', { _csrf: token, password: `guess ${i}` })));
      const codes = attempts.map((response) => response.statusCode);
      expect(codes.filter((code) => code === 401)).toHaveLength(5);
      expect(codes.filter((code) => code === 429)).toHaveLength(55);
      const refused = attempts.find((response) => response.statusCode === 429)!;
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(60);
      expect(refused.body).toContain('Too many login attempts from this address');
      expect(setCookieLine(refused, SESSION)).toBeUndefined();

      // Even the right secret is not looked at while the address is refused.
      const right = await attacker.post('/admin/login', { _csrf: token, password: SECRET });
      expect(right.statusCode).toBe(429);
      expect(setCookieLine(right, SESSION)).toBeUndefined();

      const logged = logLines.filter((line) => line.msg === 'outageless: admin login refused: too many attempts from this address');
      expect(logged.length).toBeGreaterThanOrEqual(56);
      expect(logged[0]).toMatchObject({ level: 40, client: attacker.address });
      expect(logLines.filter((line) => line.msg === 'outageless: admin login refused: wrong admin secret' && line.client === attacker.address)).toHaveLength(5);

      // Another address is unaffected.
      expect((await new Client(app).login()).statusCode).toBe(303);
    });

    it('each attempt while refused doubles the wait, up to the cap, and the wait ends', async () => {
      const limited = await startFront({ loginRateLimit: { max: 2, timeWindowMs: 400, maxBackoffMs: 2000 } });
      const visitor = new Client(limited);
      const token = await visitor.token();
      const wrong = () => visitor.post('/admin/login', { _csrf: token, password: 'wrong' });
      expect((await wrong()).statusCode).toBe(401);
      expect((await wrong()).statusCode).toBe(401);
      // 400, 800, 1600 ms, then the 2000 ms cap: the backoff, in Retry-After (whole seconds).
      const waits: (string | undefined)[] = [];
      for (let i = 0; i < 4; i++) {
        const refused = await wrong();
        expect(refused.statusCode).toBe(429);
        waits.push(refused.headers['retry-after'] as string | undefined);
      }
      expect(waits).toEqual(['1', '1', '2', '2']);
      // Past the 400 ms window the address is still refused: the wait is real, not just reported.
      await sleep(1000);
      const still = await visitor.post('/admin/login', { _csrf: token, password: SECRET });
      expect(still.statusCode).toBe(429);
      expect(still.headers['retry-after']).toBe('2');
      await sleep(2100);
      // The wait ran out: the address gets answers again.
      expect((await visitor.post('/admin/login', { _csrf: token, password: SECRET })).statusCode).toBe(303);
    });

    it('behind a trusted proxy it counts per forwarded client; without trust a forged X-Forwarded-For changes nothing', async () => {
      const proxied = await startFront({ trustProxy: true, loginRateLimit: { max: 2, timeWindowMs: 60_000 } });
      const proxy = freshAddress();
      const through = (client: string) => new Client(proxied, proxy, { 'x-forwarded-for': `203.0.113.250, ${client}` });
      const a = through('198.51.100.1');
      const tokenA = await a.token();
      for (const expected of [401, 401, 429]) expect((await a.post('/admin/login', { _csrf: tokenA, password: 'wrong' })).statusCode).toBe(expected);
      // Another client behind the same proxy still gets answers.
      expect((await through('198.51.100.2').login()).statusCode).toBe(303);

      const direct = await startFront({ trustProxy: false, loginRateLimit: { max: 2, timeWindowMs: 60_000 } });
      const address = freshAddress();
      const forging = (i: number) => new Client(direct, address, { 'x-forwarded-for': `198.51.100.${i}` });
      const codes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const client = forging(i);
        codes.push((await client.post('/admin/login', { _csrf: await client.token(), password: 'wrong' })).statusCode);
      }
      expect(codes).toEqual([401, 401, 429]);
    });
  });

  describe.skipIf(!available)('18: sessions in the site database', () => {
    it('logout revokes the session: a saved copy of the cookie no longer opens the area, on any front', async () => {
      const second = await startFront();
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      const saved = admin.cookies.get(SESSION)!;
      const rows = await sessionRows();
      const cookieId = decodeURIComponent(saved).split('.')[2]!;
      // The database holds a hash of the id, never the id the cookie carries.
      expect(rows.map((row) => row.id)).toContain(createHash('sha256').update(cookieId).digest('hex'));
      expect(rows.map((row) => row.id)).not.toContain(cookieId);

      const replay = new Client(app);
      replay.cookies.set(SESSION, saved);
      const replayOnSecond = new Client(second);
      replayOnSecond.cookies.set(SESSION, saved);
      expect(await replay.isAdmin()).toBe(true);
      expect(await replayOnSecond.isAdmin()).toBe(true);

      const token = await admin.token('/admin/upgrade');
      const out = await admin.post('/admin/logout', { _csrf: token });
      expect(out.statusCode).toBe(303);
      expect(await admin.isAdmin()).toBe(false);
      expect(await replay.isAdmin()).toBe(false);
      expect(await replayOnSecond.isAdmin()).toBe(false);
      expect((await replay.get('/admin')).headers.location).toMatch(/^\/admin\/login/);
      expect((await sessionRows()).map((row) => row.id)).not.toContain(createHash('sha256').update(cookieId).digest('hex'));
    });

    it('a component in post-install serves a live session, and not the same cookie once it is logged out', async () => {
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      const saved = admin.cookies.get(SESSION)!;
      expect((await admin.get('/mod_quiz/', 'application/json')).statusCode).toBe(200);
      await setComponentState(database.db, 'mod_quiz', 'post-install');
      try {
        await app.outageless.refresh();
        expect((await new Client(app).get('/mod_quiz/', 'application/json')).statusCode).toBe(503);
        expect((await admin.get('/mod_quiz/', 'application/json')).statusCode).toBe(200);
        expect((await admin.post('/admin/logout', { _csrf: await admin.token('/admin/upgrade') })).statusCode).toBe(303);
        const replay = new Client(app);
        replay.cookies.set(SESSION, saved);
        const refused = await replay.get('/mod_quiz/', 'application/json');
        expect(refused.statusCode).toBe(503);
        expect(refused.json()).toMatchObject({ error: { component: 'mod_quiz' } });
      } finally {
        await setComponentState(database.db, 'mod_quiz', 'normal');
        await app.outageless.refresh();
      }
    });

    it('a change of the admin secret revokes the sessions issued under the old one', async () => {
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      expect(await admin.isAdmin()).toBe(true);

      // The secret is changed: a front with the new secret starts, and the admin logs in there.
      const renewed = await startFront({ adminSecret: `${SECRET} (rotated)` });
      expect((await new Client(renewed).login(`${SECRET} (rotated)`)).statusCode).toBe(303);
      const fingerprints = new Set((await sessionRows()).map((row) => row.secret_fingerprint));
      expect(fingerprints.size).toBe(1);

      // The old session is gone, even on a front that still runs with the old secret.
      expect(await admin.isAdmin()).toBe(false);
      const onRenewed = new Client(renewed);
      onRenewed.cookies.set(SESSION, admin.cookies.get(SESSION)!);
      expect(await onRenewed.isAdmin()).toBe(false);
    });

    it('a cookie signed with the real key counts only for a recorded session with its own issue time', async () => {
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      const [kind, issued, id] = decodeURIComponent(admin.cookies.get(SESSION)!).split('.');
      const key = createHash('sha256').update(`outageless-admin:${SECRET}`).digest('hex');
      const forged = (value: string) => {
        const client = new Client(app);
        client.cookies.set(SESSION, encodeURIComponent(sign(value, key)));
        return client;
      };
      // Control: the genuine value re-signed is the same cookie, so it opens the area.
      expect(await forged(`${kind}.${issued}.${id}`).isAdmin()).toBe(true);
      expect(await forged(`admin.${Date.now()}.${randomBytes(32).toString('hex')}`).isAdmin()).toBe(false);
      expect(await forged(`admin.${Number(issued) - 1000}.${id}`).isAdmin()).toBe(false);
    });
  });

  describe.skipIf(!available)('19: CSRF bound to the session', () => {
    it('an anonymous visit\'s token and CSRF cookie, with an admin cookie, cannot start an upgrade or log out', async () => {
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);

      const visitor = new Client(app);
      const anonymousToken = await visitor.token();
      const mixed = new Client(app);
      mixed.cookies.set(SESSION, admin.cookies.get(SESSION)!);
      mixed.cookies.set(CSRF, visitor.cookies.get(CSRF)!);
      const upgrade = await mixed.post('/admin/upgrade', { _csrf: anonymousToken });
      expect(upgrade.statusCode, upgrade.body).toBe(403);
      expect((await mixed.post('/admin/logout', { _csrf: anonymousToken })).statusCode).toBe(403);
      expect(await admin.isAdmin()).toBe(true);
      await expectNoUpgradeStarted();

      // Control: the session's own token, with its own cookie, passes.
      const own = await admin.token('/admin/upgrade');
      expect((await admin.post('/admin/logout', { _csrf: own })).statusCode).toBe(303);
    });

    it('login renews the CSRF secret: the login page\'s token does not work afterwards', async () => {
      const admin = new Client(app);
      const loginToken = await admin.token();
      const anonymousCsrfCookie = admin.cookies.get(CSRF)!;
      const login = await admin.post('/admin/login', { _csrf: loginToken, password: SECRET, next: '/admin/upgrade' });
      expect(login.statusCode).toBe(303);
      expect(setCookieLine(login, CSRF)).toMatch(/^outageless_csrf=;/);
      const page = await admin.get('/admin/upgrade');
      expect(admin.cookies.get(CSRF)).toBeDefined();
      expect(admin.cookies.get(CSRF)).not.toBe(anonymousCsrfCookie);

      // The pre-login token with the pre-login cookie (a fixation attempt) is refused.
      const fixated = new Client(app);
      fixated.cookies.set(SESSION, admin.cookies.get(SESSION)!);
      fixated.cookies.set(CSRF, anonymousCsrfCookie);
      expect((await fixated.post('/admin/upgrade', { _csrf: loginToken })).statusCode).toBe(403);
      expect((await admin.post('/admin/upgrade', { _csrf: loginToken })).statusCode).toBe(403);
      await expectNoUpgradeStarted();
      expect(csrfToken(page.body)).not.toBe(loginToken);
    });
  });

  describe.skipIf(!available)('20: cookies, headers, timestamps', () => {
    it('cookies are Secure behind HTTPS with a trusted proxy, and not over plain HTTP', async () => {
      const plain = new Client(app);
      expect((await plain.login()).statusCode).toBe(303);
      const plainLogin = await plain.get('/admin/login');
      expect(plainLogin.statusCode).toBe(200);
      const visitor = new Client(app, freshAddress(), { 'x-forwarded-proto': 'https' });
      const untrusted = await visitor.get('/admin/login');
      // Not trusted: a forwarded header alone does not make the connection HTTPS.
      expect(setCookieLine(untrusted, CSRF)).not.toMatch(/;\s*Secure/i);

      for (const [what, front] of [
        ['plugin trustProxy', await startFront({ trustProxy: true })],
        ['Fastify trustProxy', await startFront({}, { trustProxy: true })],
      ] as const) {
        const client = new Client(front, freshAddress(), { 'x-forwarded-proto': 'https' });
        const page = await client.get('/admin/login');
        expect(setCookieLine(page, CSRF), what).toMatch(/;\s*Secure/i);
        const login = await client.post('/admin/login', { _csrf: csrfToken(page.body), password: SECRET, next: '/admin' });
        expect(login.statusCode, what).toBe(303);
        expect(setCookieLine(login, SESSION), what).toMatch(/;\s*Secure/i);
        expect(setCookieLine(login, SESSION), what).toMatch(/;\s*HttpOnly/i);
        expect(await client.isAdmin(), what).toBe(true);
        const logout = await client.post('/admin/logout', { _csrf: await client.token('/admin/upgrade') });
        expect(setCookieLine(logout, SESSION), what).toMatch(/;\s*Secure/i);
      }
      const http = new Client(app);
      const login = await http.login();
      expect(setCookieLine(login, SESSION)).toBeDefined();
      expect(setCookieLine(login, SESSION)).not.toMatch(/;\s*Secure/i);
    });

    it('every page sends CSP, X-Frame-Options, X-Content-Type-Options and Referrer-Policy', async () => {
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      const pages: [string, Response][] = [
        ['login page', await new Client(app).get('/admin/login')],
        ['upgrade page', await admin.get('/admin/upgrade')],
        ['redirect', await new Client(app).get('/admin')],
        ['component page', await new Client(app).get('/mod_assign/')],
        ['healthz', await new Client(app).get('/healthz')],
        ['not found', await new Client(app).get('/no/such/page')],
        ['progress script', await admin.get('/admin/assets/upgrade-progress.js')],
      ];
      await setSiteMaintenance(database.db, true, 'down for a bit');
      try {
        await app.outageless.refresh();
        const unavailable = await new Client(app).get('/');
        expect(unavailable.statusCode).toBe(503);
        pages.push(['503 page', unavailable]);
      } finally {
        await setSiteMaintenance(database.db, false);
        await app.outageless.refresh();
      }
      for (const [what, response] of pages) {
        const csp = String(response.headers['content-security-policy']);
        expect(csp, what).toContain("default-src 'self'");
        expect(csp, what).toContain("script-src 'self'");
        expect(csp, what).toContain("frame-ancestors 'none'");
        expect(csp, what).not.toMatch(/script-src[^;]*unsafe-inline/);
        expect(response.headers['x-frame-options'], what).toBe('DENY');
        expect(response.headers['x-content-type-options'], what).toBe('nosniff');
        expect(response.headers['referrer-policy'], what).toBe('same-origin');
      }
      // The admin pages hold no inline script the policy would block.
      const upgradePage = pages[1]![1].body;
      expect(upgradePage).not.toMatch(/<script(?![^>]*\bsrc=)/);
      expect(pages.at(-2)![1].headers['content-type']).toMatch(/^text\/javascript/);
    });

    it('a session whose timestamp is in the future is refused, even with a row and the real key', async () => {
      const key = createHash('sha256').update(`outageless-admin:${SECRET}`).digest('hex');
      // A row as a front would write it, but issued an hour from now (a forged or broken clock).
      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      const fingerprint = (await sessionRows()).at(-1)!.secret_fingerprint;
      const id = randomBytes(32).toString('hex');
      const cookieFor = (issued: Date) => {
        const client = new Client(app);
        client.cookies.set(SESSION, encodeURIComponent(sign(`admin.${issued.getTime()}.${id}`, key)));
        return client;
      };
      const insert = (issued: Date) => sql`insert into outageless_admin_session (id, secret_fingerprint, created_at, expires_at)
        values (${createHash('sha256').update(id).digest('hex')}, ${fingerprint}, ${issued}, ${new Date(issued.getTime() + 8 * 3_600_000)})`.execute(database.db);
      const future = new Date(Date.now() + 3_600_000);
      await insert(future);
      expect(await cookieFor(future).isAdmin()).toBe(false);
      // Control: the same row issued now is accepted.
      await sql`delete from outageless_admin_session where id = ${createHash('sha256').update(id).digest('hex')}`.execute(database.db);
      const now = new Date();
      await insert(now);
      expect(await cookieFor(now).isAdmin()).toBe(true);
    });
  });
});
