import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GuardVerdict } from '../runtime/guard.ts';
import { html, page } from './html.ts';

/** Sends the 503 page: HTML for browsers, JSON for `Accept: application/json`, always with Retry-After. */
export function sendUnavailable(request: FastifyRequest, reply: FastifyReply, verdict: Extract<GuardVerdict, { kind: 'unavailable' }>): FastifyReply {
  reply.code(503).header('retry-after', String(verdict.retryAfterSeconds)).header('cache-control', 'no-store');
  if (wantsJson(request)) {
    return reply.send({ error: { code: verdict.code, message: verdict.message, component: verdict.component ?? null, retryAfter: verdict.retryAfterSeconds } });
  }
  return reply
    .type('text/html; charset=utf-8')
    .send(page(verdict.title, html`<div class="notice warn"><h1>${verdict.message}</h1><p>Please try again in ${verdict.retryAfterSeconds} seconds.</p></div>`));
}

export function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  const json = accept.indexOf('application/json');
  if (json < 0) return false;
  const htmlIndex = accept.indexOf('text/html');
  return htmlIndex < 0 || json < htmlIndex;
}
