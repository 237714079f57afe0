import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify';
import { cacheErrors } from '../caches/errors.ts';
import { errors, isOutagelessError, type OutagelessError } from '../errors.ts';
import { jobErrors } from '../jobs/errors.ts';
import type { Front } from '../runtime/front.ts';
import { recordUnchangedOutcome, runOperatorAction, type OperatorAction, type OperatorActionResult } from '../runtime/operator-actions.ts';
import type { OperatorActionName, OperatorActor } from '../state/operator-log.ts';
import { clientAddress } from './admin-session.ts';
import { html, page } from './html.ts';
import { wantsJson } from './unavailable.ts';

/**
 * The admin console's actions: site maintenance on/off, pause/resume a component, purge
 * caches, set/clear the UI upgrade lock. Each is a CSRF-protected POST from the dashboard,
 * goes through the CLI's code path (src/runtime/operator-actions.ts), so it is refused under
 * the CLI's rules with the same coded errors, and lands in the operator log. Done: 303 back
 * to /admin. Refused: 409 (400 for bad input) with the error's message, nothing changed.
 */

export interface AdminActionOptions {
  readonly front: Front;
  readonly requireAdmin: preHandlerHookHandler;
  readonly csrfCheck: preHandlerHookHandler;
  /** Trust `X-Forwarded-For` for the client address the log records. */
  readonly trustProxy: boolean;
  /** How long a pause waits for its component's events in flight (default 10 s). */
  readonly drainTimeoutMs?: number;
}

const ADMIN = { config: { outageless: { area: 'admin' as const } } };

type Form = Record<string, string | undefined> | undefined;

/** Codes that mean the form itself was wrong (a tampered or stale page): 400, not 409. */
const BAD_INPUT = new Set<string>([errors.usage.code, errors.unknownComponent.code, cacheErrors.unknownComponent.code]);

/** The form fields of each route, read into the action they ask for (a usage error when they make no sense). */
const PARSERS: Readonly<Record<string, (body: Form, drainTimeoutMs: number) => OperatorAction>> = {
  maintenance: (body) => {
    const enabled = body?.enabled;
    if (enabled === 'off') return { kind: 'maintenance-off' };
    if (enabled !== 'on') throw errors.usage(`enabled must be "on" or "off", got "${enabled ?? ''}"`);
    return { kind: 'maintenance-on', message: body?.message?.trim() || null };
  },
  pause: (body, drainTimeoutMs) => ({ kind: 'pause', component: required(body, 'component'), reason: body?.reason?.trim() || null, drainTimeoutMs }),
  resume: (body) => ({ kind: 'resume', component: required(body, 'component') }),
  'purge-caches': (body) => ({ kind: 'purge-caches', component: body?.component?.trim() || null }),
  'ui-lock': (body) => {
    if (body?.lock === 'set') return { kind: 'ui-lock', locked: true };
    if (body?.lock === 'clear') return { kind: 'ui-lock', locked: false };
    throw errors.usage(`lock must be "set" or "clear", got "${body?.lock ?? ''}"`);
  },
};

/** What a form that could not be read was trying to do, for the log. */
function attempted(route: string, body: Form): OperatorActionName {
  if (route === 'maintenance') return body?.enabled === 'off' ? 'maintenance-off' : 'maintenance-on';
  if (route === 'ui-lock') return body?.lock === 'clear' ? 'ui-lock-clear' : 'ui-lock-set';
  return route as 'pause' | 'resume' | 'purge-caches';
}

function required(body: Form, field: string): string {
  const value = body?.[field]?.trim();
  if (!value) throw errors.usage(`name the component (form field "${field}")`);
  return value;
}

function describe(result: OperatorActionResult): string {
  switch (result.kind) {
    case 'maintenance':
      return result.enabled ? `Maintenance enabled${result.message ? `: ${result.message}` : ''}.` : 'Maintenance disabled.';
    case 'component-state':
      return result.state === 'maintenance' ? `${result.component} is in maintenance.` : `${result.component} is back to normal.`;
    case 'purged':
      return result.purge.kind === 'all' ? `Caches purged (revision ${result.purge.revision}).` : `Caches of ${result.purge.component} purged (revision ${result.purge.revision}).`;
    case 'ui-lock':
      return result.locked ? 'UI upgrade lock set.' : 'UI upgrade lock cleared.';
  }
}

/**
 * Registers POST /admin/actions/{maintenance,pause,resume,purge-caches,ui-lock} inside the
 * admin area's context (its session, cookie and CSRF plugins).
 *
 * @example
 * ```ts
 * await adminActionRoutes(app, { front, requireAdmin, csrfCheck, trustProxy: false })
 * // <form method="post" action="/admin/actions/pause"><input name="_csrf" …><input name="component" value="mod_assign">
 * ```
 */
export async function adminActionRoutes(app: FastifyInstance, options: AdminActionOptions): Promise<void> {
  const { front, requireAdmin, csrfCheck, trustProxy } = options;
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;

  const actorOf = (request: FastifyRequest): OperatorActor => ({
    kind: 'web',
    // The session table keeps only this hash: the log can name the session, never replay it.
    sessionHash: request.outagelessAdmin ? createHash('sha256').update(request.outagelessAdmin.id).digest('hex') : null,
    client: clientAddress(request, trustProxy),
  });

  const answer = (request: FastifyRequest, reply: FastifyReply, status: number, id: string, message: string, error?: OutagelessError) => {
    if (wantsJson(request)) return reply.code(status).send(error ? { error: { code: error.code, message: error.message, hint: error.hint ?? null } } : { ok: true, message });
    return reply.code(status).type('text/html; charset=utf-8').send(page('Site administration', html`
      <div class="notice ${status >= 400 ? 'error' : 'warn'}" id="${id}"${error ? html` data-code="${error.code}"` : ''}><p>${error ? html`<code>${error.code}</code>: ` : ''}${message}</p>${error?.hint ? html`<p>Fix: ${error.hint}</p>` : ''}</div>
      <p><a href="/admin">Back to site administration</a></p>`, { admin: true }));
  };

  for (const [name, parse] of Object.entries(PARSERS)) {
    app.post<{ Body: Form }>(`/admin/actions/${name}`, { ...ADMIN, preHandler: [requireAdmin, csrfCheck] }, async (request, reply) => {
      const actor = actorOf(request);
      let action: OperatorAction;
      try {
        action = parse(request.body, drainTimeoutMs);
      } catch (error) {
        if (!isOutagelessError(error)) throw error;
        // A form that names no valid action is still an attempt: the log keeps it.
        await recordUnchangedOutcome(front.database, { actor, action: attempted(name, request.body), target: request.body?.component?.trim() || null, outcome: 'refused', errorCode: error.code, detail: error.message });
        return answer(request, reply, 400, 'action-refused', error.message, error);
      }
      try {
        const result = await runOperatorAction({ database: front.database, loadCode: async () => front.code, actor }, action);
        await front.refresh();
        if (wantsJson(request)) return reply.send({ ok: true, message: describe(result), result });
        return reply.redirect('/admin', 303);
      } catch (error) {
        if (!isOutagelessError(error)) throw error;
        await front.refresh();
        if (error.code === jobErrors.stillActive.code && action.kind === 'pause') {
          // The pause is committed; only the wait for events already running ran out.
          return answer(request, reply, 202, 'action-incomplete', `${action.component} is paused: its routes answer 503 and no new event of it starts. ${error.message}; they finish on their own.`, error);
        }
        return answer(request, reply, BAD_INPUT.has(error.code) ? 400 : 409, 'action-refused', error.message, error);
      }
    });
  }
}
