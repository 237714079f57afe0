import type { FastifyInstance } from 'fastify';
import { formatDuration } from '../runtime/background-progress.ts';
import { findUpgradeRun, formatRunDuration, readRunEvents, readUpgradeRuns, runToJson, type ComponentSummary, type UpgradeRunRecord } from '../state/upgrade-history.ts';
import type { AdminRouteContext } from './admin-upgrade.ts';
import { html, page, timeTag, type SafeHtml } from './html.ts';
import { wantsJson } from './unavailable.ts';

/**
 * /admin/history: the same facts as `outageless history`, runs newest first with their steps
 * per component and their failures; `?run=<id>` shows one run with every step and its
 * progress lines. Times are `<time>` elements (the admin pages' script shows them in local
 * time with their age; the text inside is UTC).
 */

const ADMIN = { config: { outageless: { area: 'admin' as const } } };

const ms = formatRunDuration;

function statusCell(run: UpgradeRunRecord): SafeHtml {
  const css = run.status === 'succeeded' || run.status === 'nothing' ? 'outcome-done' : run.status === 'running' ? 'outcome-refused' : 'outcome-failed';
  return html`<td class="${css}" data-status="${run.status}">${run.status === 'nothing' ? 'nothing to do' : run.status}</td>`;
}

function componentsCell(components: readonly ComponentSummary[]): SafeHtml {
  if (components.length === 0) return html`—`;
  return html`<ul class="reasons">${components.map((c) => html`<li data-component="${c.component}">${c.component}${c.result ? ` ${c.result} at ${c.version}` : ''} in ${ms(c.durationMs)}:
    ${c.applied.count} applied (${ms(c.applied.durationMs)}), ${c.skipped.count} skipped${c.failed.count > 0 ? html`, <strong class="outcome-failed">${c.failed.count} failed (${ms(c.failed.durationMs)})</strong>` : ''}</li>`)}</ul>`;
}

function failures(run: UpgradeRunRecord): SafeHtml {
  const failed = run.log.filter((entry) => entry.status === 'failed');
  if (failed.length === 0 && !run.error) return html``;
  return html`<ul class="reasons failures">${failed.map((entry) => html`<li>${entry.component}${entry.step ? ` step ${entry.step}` : ''} (${entry.version}): ${entry.error ?? 'no error recorded'}</li>`)}
    ${failed.length === 0 && run.error ? html`<li>${run.error.code ? `${run.error.code}: ` : ''}${run.error.message}</li>` : ''}</ul>`;
}

function duration(run: UpgradeRunRecord): string {
  if (run.durationMs !== null) return ms(run.durationMs);
  return run.status === 'running' ? `running for ${formatDuration((Date.now() - run.startedAt.getTime()) / 1000)}` : 'no end recorded';
}

function runsTable(runs: readonly UpgradeRunRecord[]): SafeHtml {
  if (runs.length === 0) return html`<p id="upgrade-history">No upgrade has run on this site yet.</p>`;
  return html`<table id="upgrade-history"><thead><tr><th>Run</th><th>Started</th><th>Mode</th><th>Phase</th><th>By</th><th>Duration</th><th>Outcome</th><th>Components</th></tr></thead><tbody>
    ${runs.map((run) => html`<tr data-run="${run.runId}"><td><a href="/admin/history?run=${run.runId}"><code>${run.runId.slice(0, 8)}</code></a></td><td>${timeTag(run.startedAt)}</td>
      <td>${run.mode ?? '—'}</td><td>${run.phase ?? '—'}</td><td>${run.recorded ? `${run.startedBy} on ${run.host} pid ${run.pid}` : '—'}</td><td>${duration(run)}</td>${statusCell(run)}
      <td>${componentsCell(run.components)}${failures(run)}</td></tr>`)}
  </tbody></table>`;
}

async function runDetail(context: AdminRouteContext, run: UpgradeRunRecord): Promise<SafeHtml> {
  const events = await readRunEvents(context.front.database.autocommit, run.runId);
  return html`${runsTable([run])}
    <h2>Steps</h2>
    ${run.log.length === 0 ? html`<p>None logged.</p>` : html`<table id="run-steps"><thead><tr><th>Started</th><th>Component</th><th>Step</th><th>Version</th><th>Status</th><th>Class</th><th>Duration</th><th>Error</th></tr></thead><tbody>
      ${run.log.map((entry) => html`<tr data-status="${entry.status}"><td>${timeTag(entry.startedAt)}</td><td>${entry.component}</td><td>${entry.step ?? '—'}</td><td>${entry.version}</td><td>${entry.status}</td><td>${entry.outage ?? '—'}</td><td>${ms(entry.durationMs)}</td><td>${entry.error ?? ''}</td></tr>`)}
    </tbody></table>`}
    <h2>Progress</h2>
    ${events.length === 0 ? html`<p>${run.recorded ? 'No progress lines kept (only the newest 50 runs keep theirs).' : 'Not recorded (an older run).'}</p>` : html`<pre class="progress" id="run-progress">${events.map((event) => event.message).join('\n')}</pre>`}`;
}

/**
 * Registers GET /admin/history (HTML, or the same runs as `history --json` for a JSON client).
 *
 * @example
 * ```ts
 * await adminHistoryRoutes(app, context) // from adminUpgradeRoutes
 * ```
 */
export async function adminHistoryRoutes(app: FastifyInstance, context: AdminRouteContext): Promise<void> {
  const { front, requireAdmin, csrfToken } = context;
  app.get<{ Querystring: { run?: string; limit?: string } }>('/admin/history', { ...ADMIN, preHandler: requireAdmin }, async (request, reply) => {
    const db = front.database.autocommit;
    const lock = front.database.upgradeLock;
    const token = csrfToken(request, reply);
    const send = (status: number, body: SafeHtml) =>
      reply.code(status).type('text/html; charset=utf-8').send(page('Upgrade history', html`<nav><a href="/admin">Site administration</a><a href="/admin/upgrade">Upgrade</a><a href="/admin/history">Upgrade history</a></nav>${body}`, { admin: true, csrfToken: token }));
    const limit = request.query.limit === undefined ? 20 : Number(request.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return send(400, html`<div class="notice error">limit is a whole number of runs from 1 to 1000.</div>`);
    if (request.query.run !== undefined) {
      const found = /^[0-9a-f-]{1,40}$/i.test(request.query.run) ? await findUpgradeRun(db, request.query.run, { lock }) : { kind: 'unknown' as const };
      if (wantsJson(request) && found.kind === 'found') return { run: { ...runToJson(found.run), events: await readRunEvents(db, found.run.runId) } };
      if (found.kind !== 'found') return send(404, html`<div class="notice error" id="run-unknown">${found.kind === 'ambiguous' ? 'Several runs start with that id.' : 'No such upgrade run.'}</div>`);
      return send(200, await runDetail(context, found.run));
    }
    const runs = await readUpgradeRuns(db, { limit, lock });
    if (wantsJson(request)) return { runs: runs.map(runToJson) };
    return send(200, runsTable(runs));
  });
}
