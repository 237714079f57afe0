/**
 * The admin area's defences (src/fastify/admin.ts): who may see it, how a session is made and
 * checked (signed cookie), CSRF on every POST, the area disabled without a secret, and HTML
 * that escapes whatever text reaches it.
 *
 * The front runs release 2 plus `local_evil`, a new component whose install logs markup and
 * then throws markup. So an upgrade is pending the whole time: a POST that got past the CSRF
 * check would start a run, which the progress endpoint and the database would show.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { sign } from '@fastify/cookie';
import { outageless } from '../../src/fastify/plugin.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { readInstalled } from '../../src/state/installed.ts';
import { setSiteMaintenance } from '../../src/state/flags.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createSiteDir, type SiteDir } from '../support/sites.ts';

const SECRET = 'admin-security test secret';
const SESSION = 'outageless_admin';
const CSRF = 'outageless_csrf';
const MARKUP = `<script>alert("owned")</script> & 'co' <img src=x onerror=alert(1)>`;
const MARKUP_ESCAPED = '&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; &amp; &#39;co&#39; &lt;img src=x onerror=alert(1)&gt;';

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

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

function setCookieLines(response: Response): string[] {
  const header = response.headers['set-cookie'];
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}

function setCookieLine(response: Response, name: string): string | undefined {
  return setCookieLines(response).find((line) => line.startsWith(`${name}=`));
}

let clients = 0;

/**
 * A browser for `app.inject`: keeps the cookies the server sets and sends them back. Each one
 * comes from its own address, so the login rate limit (admin-hardening.test.ts) counts per test.
 */
class Client {
  readonly cookies = new Map<string, string>();
  readonly app: FastifyInstance;
  readonly address = `10.12.${Math.floor(clients / 250)}.${(clients++ % 250) + 1}`;
  constructor(app: FastifyInstance) {
    this.app = app;
  }

  async request(options: { method?: 'GET' | 'POST'; url: string; accept?: string; form?: Record<string, string>; headers?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = { accept: options.accept ?? 'text/html', ...options.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (options.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await this.app.inject({
      method: options.method ?? 'GET',
      url: options.url,
      headers,
      remoteAddress: this.address,
      ...(options.form ? { payload: new URLSearchParams(options.form).toString() } : {}),
    });
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

  get(url: string, accept = 'text/html'): Promise<Response> {
    return this.request({ url, accept });
  }

  post(url: string, form: Record<string, string>, headers?: Record<string, string>): Promise<Response> {
    return this.request({ method: 'POST', url, form, ...(headers ? { headers } : {}) });
  }

  /** Opens the login page and returns its CSRF token (the page also sets the CSRF cookie). */
  async loginToken(): Promise<string> {
    const page = await this.get('/admin/login');
    expect(page.statusCode).toBe(200);
    return csrfToken(page.body);
  }

  async login(secret = SECRET): Promise<Response> {
    const token = await this.loginToken();
    return this.post('/admin/login', { _csrf: token, password: secret, next: '/admin' });
  }
}

function csrfToken(body: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no CSRF token in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

/** The hidden plan fingerprint of the confirmation page's form. */
function planField(body: string): string {
  const match = /name="plan" value="([^"]+)"/.exec(body);
  if (!match) throw new Error(`no plan fingerprint in the page:\n${body.slice(0, 500)}`);
  return match[1]!;
}

/** A client that sends exactly these cookies. */
function withCookies(app: FastifyInstance, cookies: Record<string, string>): Client {
  const client = new Client(app);
  for (const [name, value] of Object.entries(cookies)) client.cookies.set(name, value);
  return client;
}

/** Anonymous: the admin pages redirect to the login page and JSON clients get 401. */
async function expectAnonymous(client: Client): Promise<void> {
  const page = await client.get('/admin');
  expect(page.statusCode, page.body).toBe(302);
  expect(page.headers.location).toMatch(/^\/admin\/login\?next=/);
  const progress = await client.get('/admin/upgrade/progress', 'application/json');
  expect(progress.statusCode).toBe(401);
}

/** Admin: /admin answers without sending to the login page, and the progress is readable. */
async function expectAdmin(client: Client): Promise<void> {
  const page = await client.get('/admin');
  expect(page.headers.location ?? '').not.toMatch(/^\/admin\/login/);
  expect([200, 302]).toContain(page.statusCode);
  expect((await client.get('/admin/upgrade/progress', 'application/json')).statusCode).toBe(200);
}

// ---------------------------------------------------------------------------------------

describe('admin area security', () => {
  let site: SiteDir;
  let database: SiteDatabase;
  /** adminSecret: SECRET. */
  let app: FastifyInstance;
  /** No adminSecret: the area is disabled. */
  let open: FastifyInstance;
  /** Another front with another secret. */
  let other: FastifyInstance;

  async function startFront(adminSecret: string | undefined): Promise<FastifyInstance> {
    const front = Fastify();
    await front.register(outageless, {
      root: site.root,
      database,
      ...(adminSecret === undefined ? {} : { adminSecret }),
      pollIntervalMs: 250,
      heartbeatMs: 60_000,
    });
    await front.ready();
    return front;
  }

  /** Nothing has started an upgrade: no progress, and local_evil is not installed. */
  async function expectNoUpgradeStarted(): Promise<void> {
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    const progress = await admin.get('/admin/upgrade/progress', 'application/json');
    // The last run is still the install (run by runUpgrade), not one from the web.
    expect(progress.json()).toMatchObject({ running: false, run: { startedBy: 'api', status: 'succeeded' } });
    expect((await readInstalled(database.db))?.has('local_evil')).toBe(false);
    expect(await database.upgradeLock.holder()).toBeUndefined();
  }

  beforeAll(async () => {
    site = await createSiteDir(2);
    await wholeSecondMtimes(join(site.root, 'core'));
    await wholeSecondMtimes(join(site.root, 'plugins'));
    database = await openDatabase(`pglite://memory/admin-security-${randomBytes(4).toString('hex')}`);
    await runUpgrade({ database, code: await discoverSite(site.root), mode: 'maintenance' });

    await site.write('plugins/local/evil/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_evil', version: 2026020100, release: '1.1', requires: 2026010100, maturity: 'stable' });
`);
    await site.write('plugins/local/evil/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: { local_evil_item: { columns: { id: { type: 'bigint', autoIncrement: true } }, primaryKey: ['id'] } },
});
`);
    await site.write('plugins/local/evil/db/install.ts', `import { defineInstall } from 'outageless';
export default defineInstall(async ({ log }) => {
  log('<b>bold</b> progress');
  throw new Error('<img src=x onerror=alert(1)> broke');
});
`);
    await wholeSecondMtimes(join(site.root, 'plugins', 'local', 'evil'));

    app = await startFront(SECRET);
    open = await startFront(undefined);
    other = await startFront('a different secret');
    expect(app.outageless.view().pending).toBe(true);
  });

  afterAll(async () => {
    for (const front of [app, open, other]) await front?.close();
    await database?.close();
    await site?.cleanup();
  });

  it('anonymous visitors are sent to the login page, JSON clients get 401, and no session is handed out', async () => {
    const visitor = new Client(app);
    const dashboard = await visitor.get('/admin');
    expect(dashboard.statusCode).toBe(302);
    expect(dashboard.headers.location).toBe('/admin/login?next=%2Fadmin');
    const upgrade = await visitor.get('/admin/upgrade');
    expect(upgrade.statusCode).toBe(302);
    expect(upgrade.headers.location).toBe('/admin/login?next=%2Fadmin%2Fupgrade');

    const progress = await visitor.get('/admin/upgrade/progress', 'application/json');
    expect(progress.statusCode).toBe(401);
    expect(progress.json()).toMatchObject({ error: { code: 'OUTAGELESS_ADMIN_REQUIRED' } });
    expect(progress.body).not.toContain('lines');
    expect((await visitor.get('/admin', 'application/json')).statusCode).toBe(401);
    expect((await visitor.get('/admin/upgrade', 'application/json')).statusCode).toBe(401);

    const login = await visitor.get('/admin/login');
    expect(login.statusCode).toBe(200);
    expect(login.body).toContain('type="password"');
    expect(login.body).not.toContain('admin area is disabled');
    const csrfCookie = setCookieLine(login, CSRF);
    expect(csrfCookie).toBeDefined();
    expect(csrfCookie).toMatch(/;\s*HttpOnly/i);
    expect(csrfCookie).toMatch(/;\s*SameSite=Strict/i);
    expect(visitor.cookies.has(SESSION)).toBe(false);
  });

  it('a wrong secret is refused with 401 and no session cookie', async () => {
    for (const wrong of ['', 'wrong', `${SECRET}x`, SECRET.slice(0, -1), SECRET.toUpperCase(), ' '.repeat(SECRET.length)]) {
      const visitor = new Client(app);
      const response = await visitor.login(wrong);
      expect(response.statusCode, `password ${JSON.stringify(wrong)}`).toBe(401);
      expect(setCookieLine(response, SESSION)).toBeUndefined();
      expect(response.body).toContain('Wrong admin secret');
      await expectAnonymous(visitor);
    }
  });

  it('the right secret answers 303 with an HttpOnly, SameSite=Strict session cookie that opens the area', async () => {
    const admin = new Client(app);
    const response = await admin.login();
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/admin');
    const cookie = setCookieLine(response, SESSION);
    expect(cookie).toBeDefined();
    expect(cookie).toMatch(/;\s*HttpOnly/i);
    expect(cookie).toMatch(/;\s*SameSite=Strict/i);
    expect(cookie).toMatch(/;\s*Path=\/(;|$)/);
    expect(cookie).toMatch(/;\s*Max-Age=28800/i);
    await expectAdmin(admin);
    // An upgrade is pending: the admin lands on the upgrade page, not the login page.
    expect((await admin.get('/admin')).headers.location).toBe('/admin/upgrade');
    expect((await admin.get('/admin/upgrade')).statusCode).toBe(200);
  });

  it('login only ever redirects inside the admin area', async () => {
    for (const [next, expected] of [
      ['/admin/upgrade', '/admin/upgrade'],
      ['https://evil.example/', '/admin'],
      ['//evil.example/admin', '/admin'],
      ['/elsewhere', '/admin'],
    ] as const) {
      const visitor = new Client(app);
      const token = await visitor.loginToken();
      const response = await visitor.post('/admin/login', { _csrf: token, password: SECRET, next });
      expect(response.statusCode).toBe(303);
      expect(response.headers.location, `next=${next}`).toBe(expected);
    }
  });

  it('tampered and forged session cookies count as anonymous', async () => {
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    const genuine = decodeURIComponent(admin.cookies.get(SESSION)!);
    const [kind, issued, nonce, ...signature] = genuine.split('.');
    expect(kind).toBe('admin');
    expect(signature.length).toBe(1);
    await expectAdmin(withCookies(app, { [SESSION]: encodeURIComponent(genuine) }));

    // The key the front derives from its secret. Signing is not enough: the session must also
    // be recorded in the database (admin-hardening.test.ts).
    const realKey = createHash('sha256').update(`outageless-admin:${SECRET}`).digest('hex');
    const forge = (value: string, key = realKey) => encodeURIComponent(sign(value, key));
    // Control: the genuine value signed with the real key is accepted, so the refusals below are about the cookie.
    await expectAdmin(withCookies(app, { [SESSION]: forge(`${kind}.${issued}.${nonce}`) }));

    const csrfSecretCookie = admin.cookies.get(CSRF)!;
    const otherAdmin = new Client(other);
    expect((await otherAdmin.login('a different secret')).statusCode).toBe(303);

    const forgeries: Record<string, string> = {
      'timestamp changed, signature kept': encodeURIComponent(`${kind}.${Number(issued) + 1}.${nonce}.${signature[0]}`),
      'nonce changed, signature kept': encodeURIComponent(`${kind}.${issued}.${'f'.repeat(nonce!.length)}.${signature[0]}`),
      'signature truncated': encodeURIComponent(genuine.slice(0, -2)),
      'no signature': encodeURIComponent(`admin.${Date.now()}.0000`),
      'signed with another key': forge(`admin.${Date.now()}.0000`, 'not the key'),
      'signed with the secret itself': forge(`admin.${Date.now()}.0000`, SECRET),
      'expired (issued 9 hours ago)': forge(`admin.${Date.now() - 9 * 3_600_000}.0000`),
      'issued an hour from now': forge(`admin.${Date.now() + 3_600_000}.0000`),
      'issued an hour from now, with the real session id': forge(`${kind}.${Date.now() + 3_600_000}.${nonce}`),
      'signed with the real key but never recorded': forge(`admin.${Date.now()}.${'a'.repeat(64)}`),
      'not a session value': forge('admin'),
      'the signed CSRF cookie': csrfSecretCookie,
      'a session from a front with another secret': otherAdmin.cookies.get(SESSION)!,
      empty: '',
    };
    for (const [what, value] of Object.entries(forgeries)) {
      const client = withCookies(app, { [SESSION]: value });
      const page = await client.get('/admin');
      expect(page.statusCode, what).toBe(302);
      expect(page.headers.location, what).toMatch(/^\/admin\/login/);
      expect((await client.get('/admin/upgrade/progress', 'application/json')).statusCode, what).toBe(401);
    }
  });

  it('POST /admin/upgrade without the session\'s own CSRF token is refused and starts nothing', async () => {
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    const token = csrfToken((await admin.get('/admin/upgrade')).body);

    const otherSession = new Client(app);
    expect((await otherSession.login()).statusCode).toBe(303);
    const otherToken = csrfToken((await otherSession.get('/admin/upgrade')).body);
    const otherCsrfCookie = otherSession.cookies.get(CSRF)!;
    expect(otherToken).not.toBe(token);

    const session = admin.cookies.get(SESSION)!;
    const ownCsrfCookie = admin.cookies.get(CSRF)!;
    const attempts: { what: string; cookies: Record<string, string>; form: Record<string, string>; headers?: Record<string, string> }[] = [
      { what: 'no token', cookies: { [SESSION]: session, [CSRF]: ownCsrfCookie }, form: {} },
      { what: 'empty token', cookies: { [SESSION]: session, [CSRF]: ownCsrfCookie }, form: { _csrf: '' } },
      { what: 'garbage token', cookies: { [SESSION]: session, [CSRF]: ownCsrfCookie }, form: { _csrf: 'abc-def' } },
      { what: 'token of another session', cookies: { [SESSION]: session, [CSRF]: ownCsrfCookie }, form: { _csrf: otherToken } },
      { what: 'token of another session in a header', cookies: { [SESSION]: session, [CSRF]: ownCsrfCookie }, form: {}, headers: { 'x-csrf-token': otherToken } },
      { what: 'own token, CSRF cookie of another session', cookies: { [SESSION]: session, [CSRF]: otherCsrfCookie }, form: { _csrf: token } },
      { what: 'own token, no CSRF cookie', cookies: { [SESSION]: session }, form: { _csrf: token } },
      { what: 'own token, unsigned CSRF cookie', cookies: { [SESSION]: session, [CSRF]: ownCsrfCookie.split('.')[0]! }, form: { _csrf: token } },
    ];
    for (const attempt of attempts) {
      const response = await withCookies(app, attempt.cookies).post('/admin/upgrade', attempt.form, attempt.headers);
      expect(response.statusCode, attempt.what).toBe(403);
    }

    // Without a session even a matching CSRF pair is not enough.
    const anonymous = new Client(app);
    const anonymousToken = await anonymous.loginToken();
    const refused = await anonymous.post('/admin/upgrade', { _csrf: anonymousToken });
    expect(refused.statusCode).toBe(401);

    await expectNoUpgradeStarted();
  });

  it('POST /admin/logout without a valid CSRF token is refused and the session stays; with it the session ends', async () => {
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    const token = csrfToken((await admin.get('/admin/upgrade')).body);
    const otherSession = new Client(app);
    expect((await otherSession.login()).statusCode).toBe(303);
    const otherToken = csrfToken((await otherSession.get('/admin/upgrade')).body);

    for (const form of [{}, { _csrf: otherToken }, { _csrf: 'nope' }] as Record<string, string>[]) {
      const response = await admin.post('/admin/logout', form);
      expect(response.statusCode, JSON.stringify(form)).toBe(403);
      expect(setCookieLine(response, SESSION)).toBeUndefined();
    }
    await expectAdmin(admin);

    // Anonymous logout is not a thing.
    expect((await new Client(app).post('/admin/logout', {})).statusCode).toBe(401);

    const out = await admin.post('/admin/logout', { _csrf: token });
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe('/admin/login');
    expect(setCookieLine(out, SESSION)).toMatch(/^outageless_admin=;/);
    await expectAnonymous(admin);
  });

  it('POST /admin/login without a valid CSRF token is refused, even with the right secret', async () => {
    const noCookie = new Client(app);
    const noCsrf = await noCookie.post('/admin/login', { password: SECRET, next: '/admin' });
    expect(noCsrf.statusCode).toBe(403);
    expect(setCookieLine(noCsrf, SESSION)).toBeUndefined();

    const visitor = new Client(app);
    await visitor.loginToken();
    const noToken = await visitor.post('/admin/login', { password: SECRET, next: '/admin' });
    expect(noToken.statusCode).toBe(403);
    expect(setCookieLine(noToken, SESSION)).toBeUndefined();

    const stranger = new Client(app);
    const strangerToken = await stranger.loginToken();
    const mixed = await visitor.post('/admin/login', { _csrf: strangerToken, password: SECRET, next: '/admin' });
    expect(mixed.statusCode).toBe(403);
    expect(setCookieLine(mixed, SESSION)).toBeUndefined();

    // Its own token passes (so the refusals above are about the token).
    const own = csrfToken((await visitor.get('/admin/login')).body);
    expect((await visitor.post('/admin/login', { _csrf: own, password: SECRET, next: '/admin' })).statusCode).toBe(303);
  });

  it('without an admin secret, every login is refused and no cookie opens the area', async () => {
    const page = await new Client(open).get('/admin/login');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('The admin area is disabled');

    for (const password of ['', 'undefined', 'null', SECRET]) {
      const visitor = new Client(open);
      const response = await visitor.login(password);
      expect(response.statusCode, `password ${JSON.stringify(password)}`).toBe(401);
      expect(setCookieLine(response, SESSION)).toBeUndefined();
      await expectAnonymous(visitor);
    }

    // Neither a session of a front that has a secret, nor one signed with the key an empty
    // or missing secret would give.
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    await expectAnonymous(withCookies(open, { [SESSION]: admin.cookies.get(SESSION)! }));
    for (const guess of ['outageless-admin:', 'outageless-admin:undefined']) {
      const key = createHash('sha256').update(guess).digest('hex');
      await expectAnonymous(withCookies(open, { [SESSION]: encodeURIComponent(sign(`admin.${Date.now()}.0000`, key)) }));
    }
  });

  it('HTML pages escape injected text: the maintenance message on the 503 page and in the admin area, the login form\'s next', async () => {
    await setSiteMaintenance(database.db, true, MARKUP);
    try {
      await app.outageless.refresh();
      const visitor = new Client(app);
      const unavailable = await visitor.get('/');
      expect(unavailable.statusCode).toBe(503);
      expect(unavailable.headers['content-type']).toMatch(/^text\/html/);
      expect(unavailable.body).toContain(MARKUP_ESCAPED);
      expect(unavailable.body).not.toContain('<script>alert');
      expect(unavailable.body).not.toContain('<img');
      // JSON carries the text as it is: escaping is the HTML's job.
      const json = await visitor.get('/', 'application/json');
      expect(json.json()).toMatchObject({ error: { code: 'OUTAGELESS_SITE_MAINTENANCE', message: MARKUP } });

      const admin = new Client(app);
      expect((await admin.login()).statusCode).toBe(303);
      const upgradePage = await admin.get('/admin/upgrade');
      expect(upgradePage.statusCode).toBe(200);
      expect(upgradePage.body).toContain(`on: ${MARKUP_ESCAPED}`);
      expect(upgradePage.body).not.toContain('<script>alert');
      expect(upgradePage.body).not.toContain('<img');
    } finally {
      await setSiteMaintenance(database.db, false);
      await app.outageless.refresh();
    }

    const login = await new Client(app).get(`/admin/login?next=${encodeURIComponent('/admin"><script>alert(1)</script>')}`);
    expect(login.statusCode).toBe(200);
    expect(login.body).toContain('value="/admin&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(login.body).not.toContain('<script>alert(1)');
  });

  it('with the page\'s own token the upgrade starts; its failure and progress are shown escaped', async () => {
    const admin = new Client(app);
    expect((await admin.login()).statusCode).toBe(303);
    const page = await admin.get('/admin/upgrade');
    expect(page.body).toContain('id="upgrade-now"');
    const confirm = await admin.get('/admin/upgrade/confirm');
    expect(confirm.statusCode).toBe(200);
    const started = await admin.post('/admin/upgrade', { _csrf: csrfToken(confirm.body), plan: planField(confirm.body) });
    expect(started.statusCode, started.body).toBe(303);

    let progress: { running: boolean; outcome: string | null; error: string | null; lines: string[] };
    const deadline = Date.now() + 20_000;
    do {
      progress = (await admin.get('/admin/upgrade/progress', 'application/json')).json();
      if (progress.running) await new Promise((resolve) => setTimeout(resolve, 50));
    } while (progress.running && Date.now() < deadline);
    expect(progress.running).toBe(false);
    expect(progress.outcome).toBe('failed');
    expect(progress.error).toContain('OUTAGELESS_ERR_INSTALL_FAILED');
    expect(progress.error).toContain('<img src=x onerror=alert(1)> broke');
    expect(progress.lines).toContain('local_evil: <b>bold</b> progress');

    const after = await admin.get('/admin/upgrade');
    expect(after.statusCode).toBe(200);
    expect(after.body).toMatch(/id="upgrade-outcome">failed: OUTAGELESS_ERR_INSTALL_FAILED/);
    expect(after.body).toContain('&lt;img src=x onerror=alert(1)&gt; broke');
    expect(after.body).toContain('local_evil: &lt;b&gt;bold&lt;/b&gt; progress');
    expect(after.body).not.toContain('<img');
    expect(after.body).not.toContain('<b>bold');
    expect((await readInstalled(database.db))?.has('local_evil')).toBe(false);
  });
});
