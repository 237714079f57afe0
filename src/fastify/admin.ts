import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import rateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit';
import { isOutagelessError } from '../errors.ts';
import { listFronts, STALE_AFTER_HEARTBEATS, type FrontRecord } from '../runtime/front-registry.ts';
import type { Front } from '../runtime/front.ts';
import { decide } from '../runtime/guard.ts';
import type { SiteState } from '../runtime/site-state.ts';
import { readBackgroundMigrations } from '../migrations/store.ts';
import type { BackgroundMigration } from '../migrations/types.ts';
import { backgroundProgress, describeRange, formatDuration } from '../runtime/background-progress.ts';
import { checkToJson, readChecks, runManualAction, type OwedCheck } from '../migrations/manual.ts';
import { parseMigrationName } from '../migrations/store.ts';
import { clientAddress, type AdminSession, type LiveAdminSession } from './admin-session.ts';
import { html, page, timeTag, type SafeHtml } from './html.ts';
import { adminUpgradeRoutes } from './admin-upgrade.ts';
import { adminActionRoutes } from './admin-actions.ts';
import { componentsSection, frontName, pendingUpgradeBanner, recentActionsSection, registerDashboardAssets, siteActionsSection } from './admin-dashboard.ts';
import { readOperatorLog } from '../state/operator-log.ts';
import { sendUnavailable, wantsJson } from './unavailable.ts';

/**
 * The admin area of a front: login, the site administration page, and the upgrade page with
 * its "Upgrade now" button and live progress. Sessions are signed cookies naming a row of the
 * site database (logout revokes them); every POST carries a CSRF token bound to the session
 * and renewed at login; login attempts are rate-limited per client address. Without an admin
 * secret the area refuses everyone.
 */

export interface AdminOptions {
  readonly front: Front;
  readonly adminSecret: string | undefined;
  readonly session: AdminSession;
  /** Trust the proxy's `X-Forwarded-For` for the client address (see the plugin option). */
  readonly trustProxy?: boolean;
  readonly loginRateLimit?: LoginRateLimit;
}

/**
 * Login attempts allowed per client address: `max` in `timeWindowMs`. Past that, the address
 * is refused for one window, and every attempt while refused doubles the wait (1, 2, 4, …
 * windows) up to `maxBackoffMs`, so guessing slows down exponentially but nobody is locked
 * out for ever (behind an untrusted proxy every client shares one address).
 *
 * @example
 * ```ts
 * await app.register(outageless, { root, adminSecret, loginRateLimit: { max: 10, timeWindowMs: 60_000, maxBackoffMs: 600_000 } })
 * ```
 */
export interface LoginRateLimit {
  readonly max: number;
  readonly timeWindowMs: number;
  readonly maxBackoffMs?: number;
}

/** Five attempts a minute per address, then backoff up to 15 minutes. */
export const DEFAULT_LOGIN_RATE_LIMIT: Required<LoginRateLimit> = { max: 5, timeWindowMs: 60_000, maxBackoffMs: 900_000 };

interface Attempts {
  count: number;
  windowStart: number;
  blockedUntil: number;
}

/**
 * The counting behind @fastify/rate-limit for logins. Its own memory store's
 * `exponentialBackoff` only grows the Retry-After it reports: the counter still resets one
 * window after the last attempt. This one keeps the address refused until the doubled wait
 * has passed, capped at `maxBackoffMs`.
 */
function backoffStore(maxBackoffMs: number): new () => FastifyRateLimitStore & { read: FastifyRateLimitStore['incr'] } {
  const entries = new Map<string, Attempts>();
  const current = (key: string, timeWindow: number, now: number) => {
    const entry = entries.get(key);
    return entry && (now < entry.windowStart + timeWindow || now < entry.blockedUntil) ? entry : undefined;
  };
  const result = (entry: Attempts | undefined, timeWindow: number, now: number) =>
    entry ? { current: entry.count, ttl: Math.max(entry.windowStart + timeWindow, entry.blockedUntil) - now } : { current: 0, ttl: timeWindow };
  return class {
    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void {
      const now = Date.now();
      let entry = current(key, timeWindow, now);
      if (!entry) {
        // Addresses that went quiet are forgotten, so the map stays as small as the attackers.
        if (entries.size >= 10_000) for (const other of entries.keys()) if (!current(other, timeWindow, now)) entries.delete(other);
        entry = { count: 0, windowStart: now, blockedUntil: 0 };
        entries.set(key, entry);
      }
      entry.count += 1;
      if (entry.count > max) entry.blockedUntil = now + Math.min(timeWindow * 2 ** (entry.count - max - 1), maxBackoffMs);
      callback(null, result(entry, timeWindow, now));
    }
    read(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
      const now = Date.now();
      callback(null, result(current(key, timeWindow, now), timeWindow, now));
    }
    child(): FastifyRateLimitStore {
      return this;
    }
  };
}

const ADMIN = { config: { outageless: { area: 'admin' as const } } };
const CSRF_COOKIE = 'outageless_csrf';
/** What a CSRF token of a visitor without a session is bound to. */
const ANONYMOUS = 'anonymous';

declare module 'fastify' {
  interface FastifyRequest {
    /** The admin session the request carries (resolved once per admin request), or null. */
    outagelessAdmin: LiveAdminSession | null;
  }
}

function sameSecret(given: string, expected: string): boolean {
  // Hash first so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function flagsTable(state: SiteState): SafeHtml {
  const { flags, upgrade } = state;
  return html`<table id="site-flags"><tbody>
    <tr><th>Maintenance</th><td>${flags.maintenance.enabled ? `on${flags.maintenance.message ? `: ${flags.maintenance.message}` : ''}` : 'off'}</td></tr>
    <tr><th>Upgrade running</th><td>${upgrade ? html`yes, ${upgrade.mode} mode (host ${upgrade.host}, pid ${upgrade.pid}, since ${timeTag(upgrade.since)})` : 'no'}</td></tr>
    <tr><th>UI upgrade lock</th><td>${flags.uiUpgradeLock ? 'set: upgrades are run from the command line' : 'not set'}</td></tr>
  </tbody></table>`;
}

function frontsTable(fronts: readonly FrontRecord[], self: string): SafeHtml {
  return html`<table id="fronts"><thead><tr><th>Front</th><th>Started</th><th>Last seen</th><th>Code versus database</th><th>Code increments</th></tr></thead><tbody>
    ${fronts.map((front) => html`<tr data-front="${front.id}"><td>${frontName(front)}${front.id === self ? ' — this front' : ''}</td>
      <td>${timeTag(front.startedAt)}</td><td>${timeTag(front.lastSeen)}</td>
      <td>${front.relation}${front.differences.length > 0 ? html`<ul class="reasons">${front.differences.map((d) => html`<li>${d.component}: code ${d.code ?? '—'}, database ${d.installed ?? '—'}</li>`)}</ul>` : ''}</td>
      <td>${Object.entries(front.components).filter(([, c]) => c.codeIncrement).map(([name, c]) => `${name} ${c.codeIncrement}`).join(', ') || '—'}</td></tr>`)}
  </tbody></table>`;
}

/** Background migrations with a progress bar each (a `<progress>` element: no script needed). */
function backgroundTable(migrations: readonly BackgroundMigration[] | undefined): SafeHtml {
  if (migrations === undefined) return html`<div class="notice error" id="background-migrations">Background migrations could not be read from the site database.</div>`;
  if (migrations.length === 0) return html`<p id="background-migrations">No background migrations.</p>`;
  const now = new Date();
  return html`<table id="background-migrations"><thead><tr><th>Migration</th><th>State</th><th>Progress</th><th>Rows/s</th><th>ETA</th><th>Cursor and range</th><th>Batches</th><th>Rows changed</th><th>Batch size</th></tr></thead><tbody>
    ${migrations.map((migration) => {
      const progress = backgroundProgress(migration, now);
      return html`<tr data-migration="${progress.name}"><td>${progress.name}</td><td class="state-${migration.state}">${migration.state}</td>
      <td><progress max="100" value="${progress.percent.toFixed(1)}">${progress.percent.toFixed(1)}%</progress> ${progress.percent.toFixed(1)}%</td>
      <td>${progress.rowsPerSecond === null ? '—' : Math.round(progress.rowsPerSecond)}</td><td>${progress.etaSeconds === null ? '—' : formatDuration(progress.etaSeconds)}</td>
      <td>${describeRange(migration)}</td><td>${migration.batches}</td><td>${migration.rowsChanged}</td><td>${migration.batchSize}</td></tr>
      ${migration.error ? html`<tr><td colspan="9" class="notice error">${progress.name}: ${migration.error}</td></tr>` : ''}`;
    })}
  </tbody></table>`;
}

/**
 * The check API's notice: what the site owes, each with its command; a manual action gets a
 * "Run now" button (a CSRF-protected POST), unless the UI upgrade lock leaves it to the CLI.
 */
function checksNotice(checks: readonly OwedCheck[] | undefined, token: string, uiLocked: boolean): SafeHtml {
  if (checks === undefined) return html`<div class="notice error" id="owed-checks">What the site owes could not be read from the site database.</div>`;
  if (checks.length === 0) return html``;
  return html`<div class="notice warn" id="owed-checks"><p>The site owes ${checks.length} item(s) after its upgrades:</p><ul>
    ${checks.map((check) => html`<li data-owed="${check.name}" data-kind="${check.kind}"><strong>${check.name}</strong> (${check.kind}, since ${timeTag(check.since)}): ${check.detail}. <code>${check.command}</code>
      ${check.kind === 'manual' && !uiLocked ? html`<form method="post" action="/admin/manual/run" class="run-manual"><input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="action" value="${check.name}"><button class="primary" type="submit">Run now</button></form>` : ''}</li>`)}
  </ul>${uiLocked && checks.some((check) => check.kind === 'manual') ? html`<p>The UI upgrade lock is set: run manual actions from the command line.</p>` : ''}</div>`;
}

/** Registers the admin routes in their own context (cookie and CSRF plugins stay inside it). */
export async function adminRoutes(app: FastifyInstance, options: AdminOptions): Promise<void> {
  const { front, adminSecret, session } = options;
  const trustProxy = options.trustProxy ?? false;
  const limit = options.loginRateLimit ?? DEFAULT_LOGIN_RATE_LIMIT;
  await app.register(cookie, { secret: session.cookieKey });
  await app.register(formbody);
  const csrfCookie = { signed: true, httpOnly: true, sameSite: 'strict', path: '/admin' } as const;
  await app.register(csrf, {
    cookieKey: CSRF_COOKIE,
    cookieOpts: csrfCookie,
    // Each token is bound to the session it was made for: a token (and CSRF cookie) from an
    // anonymous visit, or from another session, does not pass with an admin cookie.
    getUserInfo: (request) => request.outagelessAdmin?.id ?? ANONYMOUS,
    csrfOpts: { hmacKey: createHash('sha256').update(`outageless-csrf:${session.cookieKey}`).digest('hex') },
  });
  await app.register(rateLimit, { global: false, store: backoffStore(limit.maxBackoffMs ?? DEFAULT_LOGIN_RATE_LIMIT.maxBackoffMs) });
  const loginAttempts = app.createRateLimit({
    max: limit.max,
    timeWindow: limit.timeWindowMs,
    keyGenerator: (request) => `admin-login:${normalizeIP(clientAddress(request, trustProxy))}`,
  });

  // Resolved once per admin request, before the CSRF check, which needs it synchronously.
  app.decorateRequest('outagelessAdmin', null);
  app.addHook('onRequest', async (request) => {
    request.outagelessAdmin = (await session.resolve(request)) ?? null;
  });

  /** A CSRF token for this reply's page, bound to the request's session (Secure cookie over HTTPS). */
  const csrfToken = (request: FastifyRequest, reply: FastifyReply) =>
    reply.generateCsrf({ userInfo: request.outagelessAdmin?.id ?? ANONYMOUS, ...csrfCookie, secure: session.isSecure(request) });

  /** Admin pages: anonymous visitors go to the login page, JSON clients get 401. */
  const requireAdmin: preHandlerHookHandler = (request, reply, done) => {
    if (request.outagelessAdmin) return done();
    if (request.method === 'GET' && !(request.headers.accept ?? '').includes('application/json')) {
      reply.redirect(`/admin/login?next=${encodeURIComponent(request.url)}`);
      return;
    }
    reply.code(401).send({ error: { code: 'OUTAGELESS_ADMIN_REQUIRED', message: 'log in as a site administrator' } });
  };
  const csrfCheck = app.csrfProtection;

  const renderLogin = (request: FastifyRequest, reply: FastifyReply, next: string, problem?: string) => {
    const token = csrfToken(request, reply);
    return reply.type('text/html; charset=utf-8').send(page('Log in', html`
      ${problem ? html`<div class="notice error">${problem}</div>` : ''}
      ${adminSecret ? '' : html`<div class="notice warn">The admin area is disabled: start the front with OUTAGELESS_ADMIN_SECRET set.</div>`}
      <form method="post" action="/admin/login">
        <input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="next" value="${next}">
        <label>Admin secret <input type="password" name="password" autofocus></label>
        <button class="primary" type="submit">Log in</button>
      </form>`));
  };

  app.get<{ Querystring: { next?: string } }>('/admin/login', ADMIN, async (request, reply) => renderLogin(request, reply, request.query.next ?? '/admin'));

  /**
   * Counts every login attempt against the client's address, before its body or CSRF token
   * is looked at; past the limit the attempt is refused unread (429 with Retry-After), so a
   * burst of guesses gets no answers, and each refusal is logged.
   */
  const limitLogin = async (request: FastifyRequest, reply: FastifyReply) => {
    const attempt = await loginAttempts(request);
    if (attempt.isAllowed || !attempt.isExceeded) return;
    const retryAfter = Math.max(1, attempt.ttlInSeconds);
    request.log.warn({ client: clientAddress(request, trustProxy), retryAfterSeconds: retryAfter, limit: attempt.max },
      'outageless: admin login refused: too many attempts from this address');
    reply.code(429).header('retry-after', String(retryAfter)).header('cache-control', 'no-store');
    const message = `Too many login attempts from this address: try again in ${retryAfter} seconds.`;
    if (wantsJson(request)) return reply.send({ error: { code: 'OUTAGELESS_ADMIN_LOGIN_LIMITED', message, retryAfter } });
    return reply.type('text/html; charset=utf-8').send(page('Log in', html`<div class="notice error" id="login-limited">${message}</div>`));
  };

  app.post<{ Body: { password?: string; next?: string } }>('/admin/login', { ...ADMIN, onRequest: limitLogin, preHandler: csrfCheck }, async (request, reply) => {
    const next = request.body?.next?.startsWith('/admin') ? request.body.next : '/admin';
    if (!adminSecret || !sameSecret(request.body?.password ?? '', adminSecret)) {
      request.log.warn({ client: clientAddress(request, trustProxy) }, 'outageless: admin login refused: wrong admin secret');
      reply.code(401);
      return renderLogin(request, reply, next, 'Wrong admin secret.');
    }
    // A session already open in this browser is replaced, not kept alongside.
    if (request.outagelessAdmin) await session.end(request.outagelessAdmin);
    const live = await session.start();
    reply.setCookie(session.cookieName, live.cookieValue, { ...session.cookieOptions(request), signed: true, maxAge: session.maxAgeSeconds });
    // A new CSRF secret for the new session: the anonymous one from the login page is dropped,
    // and the next page sets a fresh one.
    reply.clearCookie(CSRF_COOKIE, { ...csrfCookie, secure: session.isSecure(request) });
    return reply.redirect(next, 303);
  });

  app.post('/admin/logout', { ...ADMIN, preHandler: [requireAdmin, csrfCheck] }, async (request, reply) => {
    // Deleting the row revokes the session everywhere, whatever copies of the cookie exist.
    if (request.outagelessAdmin) await session.end(request.outagelessAdmin);
    reply.clearCookie(session.cookieName, session.cookieOptions(request));
    reply.clearCookie(CSRF_COOKIE, { ...csrfCookie, secure: session.isSecure(request) });
    return reply.redirect('/admin/login', 303);
  });

  const fronts = async () =>
    listFronts(front.database.db, front.state().installed, { staleAfterMs: STALE_AFTER_HEARTBEATS * front.heartbeatMs }).catch(() => [] as FrontRecord[]);

  // The upgrade page, its confirmation and live progress live in their own module.
  const upgrades = await adminUpgradeRoutes(app, { front, requireAdmin, csrfCheck, csrfToken, flagsTable, frontsSection: async () => frontsTable(await fronts(), front.id) });
  // The dashboard's buttons (maintenance, pause/resume, purges, UI lock) and its local-time script.
  await adminActionRoutes(app, { front, requireAdmin, csrfCheck, trustProxy });
  registerDashboardAssets(app);

  // Site administration (Moodle's admin/index.php): prompts for a pending upgrade unless the
  // UI lock says the command line owns it.
  app.get('/admin', { ...ADMIN, preHandler: requireAdmin }, async (request, reply) => {
    const state = front.state();
    const verdict = decide(state, front.view(), { kind: 'admin', isAdmin: true });
    if (verdict.kind === 'unavailable') return sendUnavailable(request, reply, verdict);
    if (front.view().pending && !state.flags.uiUpgradeLock) return reply.redirect('/admin/upgrade');
    const token = csrfToken(request, reply);
    const components = [...front.code.components.values()].filter((c) => c.name !== 'core');
    return reply.type('text/html; charset=utf-8').send(page('Site administration', html`
      <nav id="admin-nav"><a href="/">Home</a>${components.map((c) => html`<a href="/${c.name}/">${c.name}</a>`)}<a href="/admin/upgrade">Upgrade status</a><a href="/admin/history">History</a></nav>
      ${state.flags.uiUpgradeLock && front.view().pending ? pendingUpgradeBanner(front.plan(), 'ui-locked-pending', 'Code on this server is ahead of the database; the upgrade is managed from the command line (UI upgrade lock set).') : ''}
      ${checksNotice(await readChecks(front.database.db).catch((error: unknown) => void request.log.warn({ err: error }, 'outageless: owed checks unreadable')), token, state.flags.uiUpgradeLock)}
      <h2>Site</h2>${flagsTable(state)}${siteActionsSection(state, token)}
      <h2>Components</h2>${componentsSection(front, state, token)}
      <h2>Background migrations</h2>${backgroundTable(await readBackgroundMigrations(front.database.db).catch((error: unknown) => void request.log.warn({ err: error }, 'outageless: background migrations unreadable')))}
      <h2>Fronts</h2>${frontsTable(await fronts(), front.id)}
      <h2>Recent actions</h2>${recentActionsSection(await readOperatorLog(front.database.db).catch((error: unknown) => void request.log.warn({ err: error }, 'outageless: operator log unreadable')))}`, { admin: true, csrfToken: token }));
  });

  // The check API for monitors and scripts: the same list as `outageless check --json`.
  app.get('/admin/checks', { ...ADMIN, preHandler: requireAdmin }, async (_request, reply) => {
    const checks = await readChecks(front.database.db);
    return reply.header('cache-control', 'no-store').send({ ok: checks.length === 0, owed: checks.map(checkToJson) });
  });

  // "Run now" on a manual action: runs it here, under the upgrade lock, then back to /admin.
  app.post<{ Body: { action?: string } }>('/admin/manual/run', { ...ADMIN, preHandler: [requireAdmin, csrfCheck] }, async (request, reply) => {
    await front.refresh();
    const state = front.state();
    const refuse = (status: number, message: string) =>
      reply.code(status).type('text/html; charset=utf-8').send(page('Manual action', html`<div class="notice error" id="manual-refused">${message}</div><p><a href="/admin">Back</a></p>`, { admin: true }));
    if (state.flags.uiUpgradeLock) return refuse(409, 'The UI upgrade lock is set: manual actions are run from the command line (outageless manual run).');
    if (state.upgrade || upgrades.webUpgradeRunning()) return refuse(409, 'An upgrade is running: run the manual action once it has finished.');
    const parsed = parseMigrationName(request.body?.action ?? '');
    if (!parsed) return refuse(400, 'Name a manual action as <component>/<id>.');
    try {
      await runManualAction({ database: front.database, code: front.code, component: parsed.component, id: parsed.id, onLog: (message) => request.log.info(`outageless: ${message}`) });
    } catch (error) {
      if (!isOutagelessError(error)) throw error;
      return refuse(409, `${error.code}: ${error.message}`);
    } finally {
      await front.refresh();
    }
    return reply.redirect('/admin', 303);
  });
}
