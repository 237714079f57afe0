import { join } from 'node:path';
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { Kysely } from 'kysely';
import { isBackgroundStep } from '../component/definitions.ts';
import { loadUpgrade } from '../component/files.ts';
import { errorFactory } from '../errors.ts';
import { isKeyMigrated, readBackgroundMigrations } from '../migrations/store.ts';
import type { BackgroundMigration } from '../migrations/types.ts';
import { backgroundProgress } from '../runtime/background-progress.ts';
import type { Front } from '../runtime/front.ts';
import { html, page } from './html.ts';
import { wantsJson } from './unavailable.ts';

/**
 * "Not upgraded yet" (Moodle 2.1's question engine): while a background migration works
 * through a table, a route that reads a row the migration has not reached yet answers 503
 * "try again later" instead of reading data in the old shape.
 */

export const NOT_UPGRADED_MESSAGE = 'This item is still being upgraded, please try again later';

export const migrationGateErrors = {
  /** `ensureDone` named a migration the component's code does not declare. */
  unknownMigration: errorFactory('OUTAGELESS_ERR_ENSURE_DONE_UNKNOWN', (component: string, id: string, known: readonly string[], file: string) => ({
    message: `ensureDone('${component}', '${id}', …): ${component} declares no background migration "${id}"${known.length > 0 ? ` (it declares: ${known.join(', ')})` : ''}`,
    location: { component, step: id, file },
    hint: `Name a step of phase: 'background' of ${file} by its id, or declare it there.`,
  })),
} as const;

/** What a route learns about one key: done, or not yet with a suggested wait. */
export type KeyVerdict =
  | { readonly kind: 'done' }
  | { readonly kind: 'not-yet'; readonly migration: string; readonly retryAfterSeconds: number };

/**
 * `app.outagelessMigrations`: asks whether a row's key has been migrated by a background
 * migration. The rows are read at most once per `ttlMs` (default 1000) per front, however hot
 * the route: a key at or below a cursor stays done, so a stale read can only answer "not
 * yet" a second too long, never "done" too early.
 */
export interface OutagelessMigrations {
  /**
   * Sends the 503 "This item is still being upgraded, please try again later" (HTML, or JSON
   * for `Accept: application/json`, with Retry-After) and resolves false when `key` of
   * `component`'s background migration `id` is not migrated yet; resolves true otherwise,
   * leaving the reply alone. A route returns `reply` after false.
   *
   * @example
   * ```ts
   * app.get<{ Params: { id: string } }>('/attempt/:id', async (request, reply) => {
   *   if (!(await app.outagelessMigrations.ensureDone(reply, 'mod_quiz', 'attempts_v2', Number(request.params.id)))) return reply
   *   return db.selectFrom('quiz_attempts').select('answers_v2').where('id', '=', Number(request.params.id)).executeTakeFirst()
   * })
   * ```
   */
  ensureDone(reply: FastifyReply, component: string, id: string, key: number): Promise<boolean>;
  /**
   * A preHandler that sends the 503 for a key not migrated yet: `key` takes it from the
   * request (a route parameter, usually). A key that is not an integer is let through: no
   * row of an integer key column has it, so the route answers it as it answers any bad id.
   *
   * @example
   * ```ts
   * app.get<{ Params: { id: string } }>('/attempt/:id', {
   *   preHandler: app.outagelessMigrations.requireDone('mod_quiz', 'attempts_v2', (request) => (request.params as { id: string }).id),
   * }, async (request) => readAttempt(Number(request.params.id)))
   * ```
   */
  requireDone(component: string, id: string, key: (request: FastifyRequest) => number | string | undefined): preHandlerAsyncHookHandler;
  /**
   * The verdict without a reply, for code that answers in its own way (a list that greys out
   * the items still being upgraded, say).
   *
   * @example
   * ```ts
   * const verdict = await app.outagelessMigrations.check('mod_quiz', 'attempts_v2', 42)
   * if (verdict.kind === 'not-yet') item.upgrading = true
   * ```
   */
  check(component: string, id: string, key: number): Promise<KeyVerdict>;
}

export interface MigrationGateOptions {
  readonly front: Front;
  /** Reads every background migration of the site (default: the store's `readBackgroundMigrations`). */
  readonly read?: (db: Kysely<any>) => Promise<readonly BackgroundMigration[]>;
  /** How long one read of the rows serves (default 1000 ms). */
  readonly ttlMs?: number;
  readonly onError?: (error: unknown) => void;
}

/** Retry-After when the rate is unknown (queued, paused, failed), and the bounds of an estimate. */
const DEFAULT_RETRY_SECONDS = 30;
const MAX_RETRY_SECONDS = 300;

interface Snapshot {
  readonly rows: ReadonlyMap<string, BackgroundMigration>;
  readonly readAt: number;
}

/**
 * Builds `app.outagelessMigrations` for a front (the plugin decorates every app with it).
 *
 * @example
 * ```ts
 * app.decorate('outagelessMigrations', createMigrationGate({ front }))
 * ```
 */
export function createMigrationGate(options: MigrationGateOptions): OutagelessMigrations {
  const { front } = options;
  const ttlMs = options.ttlMs ?? 1000;
  const read = options.read ?? readBackgroundMigrations;
  let snapshot: Snapshot | undefined;
  let reading: Promise<Snapshot> | undefined;

  // One read in flight for every request that finds the snapshot expired.
  const rows = async (): Promise<ReadonlyMap<string, BackgroundMigration>> => {
    if (snapshot && Date.now() - snapshot.readAt < ttlMs) return snapshot.rows;
    reading ??= read(front.database.db)
      .then((list) => (snapshot = { rows: new Map(list.map((m) => [`${m.component}/${m.id}`, m])), readAt: Date.now() }))
      .finally(() => {
        reading = undefined;
      });
    try {
      return (await reading).rows;
    } catch (error) {
      // Like the front's state: serve on the last rows read while the database is unreachable.
      if (!snapshot) throw error;
      options.onError?.(error);
      return snapshot.rows;
    }
  };

  // The step's version, from this front's code (loaded once per component).
  const stepVersion = async (component: string, id: string): Promise<number> => {
    const code = front.code.components.get(component);
    const file = code ? join(code.versionFile, '..', 'db', 'upgrade.ts') : `${component}/db/upgrade.ts`;
    if (!code) throw migrationGateErrors.unknownMigration(component, id, [], file);
    const background = (await loadUpgrade(front.code, code)).steps.filter(isBackgroundStep);
    const step = background.find((candidate) => candidate.id === id);
    if (!step) throw migrationGateErrors.unknownMigration(component, id, background.map((candidate) => candidate.id), file);
    return step.version;
  };

  const check = async (component: string, id: string, key: number): Promise<KeyVerdict> => {
    const name = `${component}/${id}`;
    const migration = (await rows()).get(name);
    if (!migration) {
      // Not queued: either the site was installed at or past the step's version (nothing to
      // migrate), or the upgrade has not reached the step yet.
      const version = await stepVersion(component, id);
      const installed = front.state().installed?.get(component)?.version;
      return installed !== undefined && installed >= version ? { kind: 'done' } : { kind: 'not-yet', migration: name, retryAfterSeconds: DEFAULT_RETRY_SECONDS };
    }
    if (isKeyMigrated(migration, key)) return { kind: 'done' };
    const progress = backgroundProgress(migration);
    const estimate = progress.keysPerSecond ? (key - (migration.cursor ?? migration.minKey ?? key)) / progress.keysPerSecond : DEFAULT_RETRY_SECONDS;
    return { kind: 'not-yet', migration: name, retryAfterSeconds: Math.min(MAX_RETRY_SECONDS, Math.max(1, Math.ceil(estimate))) };
  };

  const ensureDone = async (reply: FastifyReply, component: string, id: string, key: number): Promise<boolean> => {
    const verdict = await check(component, id, key);
    if (verdict.kind === 'done') return true;
    sendNotUpgraded(reply.request, reply, component, verdict);
    return false;
  };

  return {
    check,
    ensureDone,
    requireDone(component, id, key) {
      return async (request, reply) => {
        const value = key(request);
        const number = typeof value === 'number' ? value : value === undefined || !/^-?\d+$/.test(value) ? Number.NaN : Number(value);
        if (!Number.isSafeInteger(number)) return;
        await ensureDone(reply, component, id, number);
      };
    },
  };
}

/** The 503 for a key not migrated yet: HTML for browsers, JSON for `Accept: application/json`. */
function sendNotUpgraded(request: FastifyRequest, reply: FastifyReply, component: string, verdict: Extract<KeyVerdict, { kind: 'not-yet' }>): FastifyReply {
  reply.code(503).header('retry-after', String(verdict.retryAfterSeconds)).header('cache-control', 'no-store');
  if (wantsJson(request)) {
    return reply.send({
      error: { code: 'OUTAGELESS_NOT_UPGRADED_YET', message: NOT_UPGRADED_MESSAGE, component, migration: verdict.migration, retryAfter: verdict.retryAfterSeconds },
    });
  }
  return reply
    .type('text/html; charset=utf-8')
    .send(page('Still being upgraded', html`<div class="notice warn"><h1>${NOT_UPGRADED_MESSAGE}</h1><p>Please try again in ${verdict.retryAfterSeconds} seconds.</p></div>`));
}
