import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type { FastifyInstance, FastifyPluginAsync, onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import { discoverSite } from '../component/discover.ts';
import { openDatabase, type SiteDatabase } from '../database/open.ts';
import { resolveDatabaseUrl } from '../database/url.ts';
import { upgradeOrder } from '../plan/order.ts';
import { startFront, type Front } from '../runtime/front.ts';
import { decide } from '../runtime/guard.ts';
import { startJobs, type Jobs, type JobsOptions } from '../jobs/runtime.ts';
import { attachCaches } from '../caches/front.ts';
import { createCallbacks, type Callbacks } from '../runtime/callbacks.ts';
import type { CacheStore } from '../caches/store.ts';
import type { RuntimeModule } from '../jobs/definitions.ts';
import { importRuntimeModule, loadRuntimeModules } from '../jobs/modules.ts';
import { adminRoutes, type LoginRateLimit } from './admin.ts';
import { createAdminSession } from './admin-session.ts';
import { sendUnavailable } from './unavailable.ts';
import { createMigrationGate, type OutagelessMigrations } from './migrations.ts';
import { createFormatsApi, loadSiteFormats, type OutagelessFormats } from '../migrations/formats.ts';
import { createDatabaseApi, type OutagelessDatabase } from './database-api.ts';

/** Marks which part of the site a route belongs to, so the guard knows what to check. */
export type RouteArea =
  | { readonly area: 'component'; readonly component: string }
  | { readonly area: 'admin' }
  | { readonly area: 'health' };

declare module 'fastify' {
  interface FastifyContextConfig {
    outageless?: RouteArea;
  }
  interface FastifyInstance {
    /** The front runtime: site state, plan, code versus database. */
    outageless: Front;
    /**
     * The site database for routes, typed by the tables you name:
     * `app.outagelessDatabase.kysely<TablesOf<typeof schema>>().selectFrom('block_news_post')…`
     */
    outagelessDatabase: OutagelessDatabase;
    /**
     * Scheduled tasks and event observers of the site (undefined with `jobs: false`):
     * `app.outagelessJobs.emit('course_created', { courseId })`.
     */
    outagelessJobs: Jobs | undefined;
    /** In-process caches of db/caches.ts definitions; purges reach them through the site state. */
    outagelessCaches: CacheStore;
    /** Hooks components offer into other pages; paused components' are skipped. */
    outagelessCallbacks: Callbacks;
    /**
     * "Not upgraded yet" for rows a background migration has not reached:
     * `if (!(await app.outagelessMigrations.ensureDone(reply, 'mod_quiz', 'attempts_v2', id))) return reply`.
     */
    outagelessMigrations: OutagelessMigrations;
    /**
     * The data formats of this front's code: `app.outagelessFormats.for('mod_assign', 'submission')`
     * gives the write version to stamp and `canRead(row)`.
     */
    outagelessFormats: OutagelessFormats;
  }
}

export interface OutagelessPluginOptions {
  /** Application root holding core/ and plugins/. */
  readonly root: string;
  /** Database URL (resolved like the CLI's `--database`), or an open database to share. */
  readonly database?: string | SiteDatabase;
  /** Admin login secret; without one the admin area refuses everyone. */
  readonly adminSecret?: string;
  /** Mount each component's `index.ts` under `/<component>` (core under `/`). Default true. */
  readonly mountComponents?: boolean;
  readonly pollIntervalMs?: number;
  readonly heartbeatMs?: number;
  /**
   * Run the components' scheduled tasks and event observers on pg-boss (default true). An
   * object tunes the runtime (polling intervals, cron, dead-letter attempts).
   */
  readonly jobs?: boolean | JobsTuning;
  /**
   * The server sits behind a proxy that terminates TLS: trust its `X-Forwarded-Proto` (admin
   * cookies get `Secure`) and `X-Forwarded-For` (the login rate limit counts per client, not
   * per proxy). Default: `OUTAGELESS_TRUST_PROXY=1` in the environment, else false. Fastify's
   * own `trustProxy` works too.
   */
  readonly trustProxy?: boolean;
  /** Admin login attempts per client address (default 5 a minute, then exponential backoff). */
  readonly loginRateLimit?: LoginRateLimit;
  /**
   * Security headers on every response (@fastify/helmet): these options replace outageless's
   * defaults (a same-origin Content-Security-Policy, `X-Frame-Options: DENY`, `nosniff`,
   * `Referrer-Policy: same-origin`); `false` when the host app registers helmet itself.
   */
  readonly helmet?: FastifyHelmetOptions | false;
}

/**
 * The headers the framework's own pages (admin area, 503 pages) are written for: no inline
 * scripts, inline styles only. No HSTS: that belongs to whoever terminates TLS.
 */
const DEFAULT_HELMET: FastifyHelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      'default-src': ["'self'"],
      'script-src': ["'self'"],
      'style-src': ["'self'", "'unsafe-inline'"],
      'img-src': ["'self'", 'data:'],
      'form-action': ["'self'"],
      'frame-ancestors': ["'none'"],
      'base-uri': ["'self'"],
      'object-src': ["'none'"],
    },
  },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'same-origin' },
  strictTransportSecurity: false,
};

/** Tuning of the jobs runtime (see {@link JobsOptions}). */
export type JobsTuning = Pick<JobsOptions, 'eventPollIntervalMs' | 'taskPollIntervalMs' | 'schedule' | 'eventAttempts' | 'replayIntervalMs' | 'strict'>;

/** What a started plugin holds open, closed once on `onClose` or when the start fails. */
interface Running {
  front?: Front;
  jobs?: Jobs;
}

const plugin: FastifyPluginAsync<OutagelessPluginOptions> = async (app, options) => {
  const root = resolve(options.root);
  const ownsDatabase = typeof options.database !== 'object';
  const database = typeof options.database === 'object'
    ? options.database
    : await openDatabase(resolveDatabaseUrl({ root, option: options.database }));
  const running: Running = {};
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      // Jobs first: running handlers finish while the database is still open.
      await running.jobs?.close();
      await running.front?.close();
      if (ownsDatabase) await database.close();
    })());
  app.addHook('onClose', close);
  try {
    await start(app, options, root, database, running);
  } catch (error) {
    // A front whose start failed (an index.ts that does not load, say) must not stay in the
    // registry as a live front that "matches", nor keep the process alive on its database.
    await close().catch((closeError: unknown) => app.log.warn({ err: closeError }, 'outageless: cleanup after a failed start failed'));
    throw error;
  }
};

async function start(app: FastifyInstance, options: OutagelessPluginOptions, root: string, database: SiteDatabase, running: Running): Promise<void> {
  const code = await discoverSite(root);
  const front = await startFront({
    database,
    code,
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    onError: (error) => app.log.warn({ err: error }, 'outageless: state refresh failed; serving on the last known state'),
  });
  running.front = front;
  app.decorate('outageless', front);
  app.decorate('outagelessDatabase', createDatabaseApi(database));
  app.decorate('outagelessJobs', undefined);
  const caches = await attachCaches(front);
  app.decorate('outagelessCaches', caches);
  // Request-scoped caches cost an AsyncLocalStorage scope per request: only when declared.
  const requestCaches = [...caches.definitions.values()].some((definitions) => Object.values(definitions).some((cache) => cache.mode === 'request'));
  if (requestCaches) app.addHook('onRequest', caches.requestHook);
  app.addHook('onListen', async () => {
    const address = app.server.address();
    if (address && typeof address === 'object') front.setUrl(`http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`);
  });

  // Registered before the guard, so its 503 pages carry the headers too.
  if (options.helmet !== false) await app.register(helmet, options.helmet ?? DEFAULT_HELMET);

  const trustProxy = options.trustProxy ?? ['1', 'true'].includes(process.env.OUTAGELESS_TRUST_PROXY ?? '');
  const session = createAdminSession({
    adminSecret: options.adminSecret,
    db: database.db,
    trustProxy,
    onError: (error) => app.log.warn({ err: error }, 'outageless: admin sessions unreadable; the request counts as anonymous'),
  });

  // One guard for every route of the app: component routes carry their component in their
  // config; routes of the host app count as core's. Admin routes guard themselves (they
  // need the session), and health routes are never guarded.
  const guard: onRequestHookHandler = (request, reply, done) => {
    const area = request.routeOptions.config.outageless;
    if (area?.area === 'admin' || area?.area === 'health') return done();
    const component = area?.component ?? 'core';
    // Sessions live in the database: asked only when the verdict depends on it (post-install),
    // so every other request stays synchronous.
    let asked = false;
    const verdict = decide(front.state(), front.view(), { kind: 'component', component, isAdmin: () => ((asked = true), false) });
    if (verdict.kind !== 'unavailable') return done();
    if (!asked) return void sendUnavailable(request, reply, verdict);
    session.isAdmin(request).then((admin) => {
      const final = admin ? decide(front.state(), front.view(), { kind: 'component', component, isAdmin: () => true }) : verdict;
      if (final.kind === 'unavailable') sendUnavailable(request, reply, final);
      else done();
    }, done);
  };
  app.addHook('onRequest', guard);

  app.get('/healthz', { config: { outageless: { area: 'health' } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { outageless: { area: 'health' } } }, async (_request, reply) => {
    const view = front.view();
    if (view.breaking.length > 0) {
      return reply.code(503).send({ status: 'not ready', reason: 'code behind the database after a breaking change', components: view.breaking });
    }
    if (view.waitingForPre.length > 0) {
      return reply.code(503).send({ status: 'not ready', reason: 'the database lacks the pre-upgrade steps this code needs: run `outageless upgrade --phase pre`', components: view.waitingForPre });
    }
    return { status: 'ready' };
  });

  await app.register(adminRoutes, {
    front,
    adminSecret: options.adminSecret,
    session,
    trustProxy,
    ...(options.loginRateLimit ? { loginRateLimit: options.loginRateLimit } : {}),
  });

  app.decorate('outagelessFormats', createFormatsApi(await loadSiteFormats(code)));
  app.decorate('outagelessMigrations', createMigrationGate({ front, onError: (error) => app.log.warn({ err: error }, 'outageless: background migrations unreadable; answering from the last rows read') }));
  const modules = options.mountComponents ?? true ? await mountComponents(app, front) : undefined;
  app.decorate('outagelessCallbacks', createCallbacks(front, modules ?? (await loadRuntimeModules(code))));

  if (options.jobs ?? true) {
    const jobs = await startJobs({
      database,
      code,
      front,
      modules: modules ?? (await loadRuntimeModules(code)),
      log: app.log,
      ...(typeof options.jobs === 'object' ? options.jobs : {}),
    });
    running.jobs = jobs;
    app.outagelessJobs = jobs;
  }
}

/**
 * Registers each component's runtime in its own encapsulated context under its prefix, and
 * returns the loaded modules (their `tasks` and `observers` exports feed the jobs runtime).
 */
async function mountComponents(app: FastifyInstance, front: Front): Promise<Map<string, RuntimeModule>> {
  const modules = new Map<string, RuntimeModule>();
  for (const component of upgradeOrder(front.code)) {
    const file = join(component.dir, 'index.ts');
    if (!existsSync(file)) continue;
    const module = await importRuntimeModule(file, component.name);
    modules.set(component.name, module);
    // An index.ts may hold only handlers (tasks, observers) and no routes.
    if (module.default === undefined) continue;
    const routes = module.default as FastifyPluginAsync;
    const area: RouteArea = { area: 'component', component: component.name };
    await app.register(
      async (child) => {
        child.addHook('onRoute', (route) => {
          route.config = { ...(route.config as object), outageless: area };
        });
        await child.register(routes);
      },
      { prefix: component.name === 'core' ? '' : `/${component.name}` },
    );
  }
  return modules;
}

/**
 * The outageless front runtime for Fastify: opens the site, loads every component's routes
 * into its own context, and guards each request against the site state (DESIGN §4.4).
 *
 * @example
 * ```ts
 * import Fastify from 'fastify'
 * import outageless from 'outageless/fastify'
 *
 * const app = Fastify()
 * await app.register(outageless, { root: '/srv/lms', database: process.env.DATABASE_URL, adminSecret: process.env.OUTAGELESS_ADMIN_SECRET })
 * await app.listen({ port: 3000 })
 * // Components' tasks and observers run on pg-boss; host code emits events:
 * await app.outagelessJobs?.emit('course_created', { courseId: 42 })
 * ```
 */
export const outageless = fp(plugin, { fastify: '5.x', name: 'outageless' });
