import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify';
import { isOutagelessError } from '../errors.ts';
import type { Plan } from '../plan/plan.ts';
import type { Front } from '../runtime/front.ts';
import { decide, UPGRADING_MESSAGE } from '../runtime/guard.ts';
import type { SiteState } from '../runtime/site-state.ts';
import { runUpgrade } from '../upgrade/run.ts';
import { describeUpgradeEvent } from '../upgrade/describe-event.ts';
import { html, page, raw, type SafeHtml } from './html.ts';
import { sendUnavailable } from './unavailable.ts';

/**
 * The admin upgrade page (Moodle's admin/index.php upgrade prompt): the plan, "Upgrade now",
 * and the live progress of the run. Registered by `adminRoutes` inside its context, so the
 * session, cookie and CSRF plugins are the admin area's.
 */

/** What the admin area shares with its upgrade routes. */
export interface AdminRouteContext {
  readonly front: Front;
  /** Admin pages: anonymous visitors go to the login page, JSON clients get 401. */
  readonly requireAdmin: preHandlerHookHandler;
  readonly csrfCheck: preHandlerHookHandler;
  /** A CSRF token for this reply's page, bound to the request's session. */
  readonly csrfToken: (request: FastifyRequest, reply: FastifyReply) => string;
  /** The dashboard's site flags table. */
  readonly flagsTable: (state: SiteState) => SafeHtml;
  /** The dashboard's fronts table, read from the registry. */
  readonly frontsSection: () => Promise<SafeHtml>;
}

/** What the upgrade routes tell the rest of the admin area. */
export interface AdminUpgradeRoutes {
  /** True while an upgrade started from this front's page is running. */
  readonly webUpgradeRunning: () => boolean;
}

const ADMIN = { config: { outageless: { area: 'admin' as const } } };

/** What a web-started upgrade has done so far; the page polls it for live progress. */
interface WebUpgrade {
  running: boolean;
  readonly lines: string[];
  outcome: 'running' | 'succeeded' | 'failed';
  error: string | undefined;
}

/** The upgrade page's live progress: polls until the run ends, then reloads to show the new state. */
const PROGRESS_SCRIPT = '/admin/assets/upgrade-progress.js';
const PROGRESS_SCRIPT_SOURCE = `const timer = setInterval(async () => {
  const res = await fetch('/admin/upgrade/progress', { headers: { accept: 'application/json' } });
  if (!res.ok) return;
  const p = await res.json();
  document.getElementById('upgrade-progress').textContent = p.lines.join('\\n');
  document.getElementById('upgrade-outcome').textContent = p.outcome + (p.error ? ': ' + p.error : '');
  if (!p.running) { clearInterval(timer); location.reload(); }
}, 300);
`;

function planTable(plan: Plan): SafeHtml {
  const rows = plan.items.filter((item) => item.action !== 'unchanged' || item.reasons.length > 0);
  if (rows.length === 0) return html`<p>Every component is up to date.</p>`;
  return html`<table id="upgrade-plan"><thead><tr><th>Component</th><th>Installed</th><th>Code</th><th>Change</th><th>Class</th><th>Reasons</th></tr></thead><tbody>
    ${rows.map((item) => html`<tr data-component="${item.component}"><td>${item.component}</td><td>${item.installedVersion ?? '—'}</td><td>${item.codeVersion ?? '—'}</td>
      <td>${item.action}</td><td class="class-${item.outage}">${item.outage}</td>
      <td><ul class="reasons">${item.reasons.map((reason) => html`<li>${reason}</li>`)}</ul></td></tr>`)}
  </tbody></table>`;
}

/**
 * Registers /admin/upgrade (page and POST), its progress endpoint and script.
 *
 * @example
 * ```ts
 * const upgrades = await adminUpgradeRoutes(app, { front, requireAdmin, csrfCheck, csrfToken, flagsTable, frontsSection })
 * if (upgrades.webUpgradeRunning()) refuse(409, 'An upgrade is running')
 * ```
 */
export async function adminUpgradeRoutes(app: FastifyInstance, context: AdminRouteContext): Promise<AdminUpgradeRoutes> {
  const { front, requireAdmin, csrfCheck, csrfToken } = context;
  let webUpgrade: WebUpgrade | undefined;

  app.get('/admin/upgrade', { ...ADMIN, preHandler: requireAdmin }, async (request, reply) => {
    const state = front.state();
    const verdict = decide(state, front.view(), { kind: 'admin-upgrade', isAdmin: true });
    if (verdict.kind === 'unavailable') return sendUnavailable(request, reply, verdict);
    const running = state.upgrade !== undefined || webUpgrade?.running === true;
    const pending = front.view().pending;
    const canUpgrade = pending && !running && !state.flags.uiUpgradeLock;
    const token = csrfToken(request, reply);
    const notice = running
      ? html`<div class="notice warn" id="upgrade-running">${UPGRADING_MESSAGE}.</div>`
      : state.flags.uiUpgradeLock && pending
        ? html`<div class="notice info" id="ui-locked">The upgrade is managed from the command line (UI upgrade lock set).</div>`
        : pending
          ? html`<div class="notice warn" id="upgrade-prompt">An upgrade is pending: the code on this server is newer than the database.${front.plan().maintenanceRequired ? ' It needs maintenance: the site answers 503 while it runs.' : ' It needs no maintenance.'}</div>`
          : html`<div class="notice info">No upgrade is pending.</div>`;
    return reply.type('text/html; charset=utf-8').send(page('Upgrade', html`
      <nav><a href="/admin">Site administration</a></nav>
      ${notice}
      ${canUpgrade ? html`<form method="post" action="/admin/upgrade" id="upgrade-form"><input type="hidden" name="_csrf" value="${token}"><button class="primary" type="submit" id="upgrade-now">Upgrade now</button></form>` : ''}
      ${webUpgrade ? html`<h2>Progress</h2><p id="upgrade-outcome">${webUpgrade.outcome}${webUpgrade.error ? `: ${webUpgrade.error}` : ''}</p><pre class="progress" id="upgrade-progress">${webUpgrade.lines.join('\n')}</pre>` : ''}
      <h2>Plan</h2>${planTable(front.plan())}
      <h2>Site</h2>${context.flagsTable(state)}
      <h2>Fronts</h2>${await context.frontsSection()}
      ${webUpgrade?.running ? raw(`<script src="${PROGRESS_SCRIPT}" defer></script>`) : ''}`, { admin: true, csrfToken: token }));
  });

  // A file, not an inline script: the Content-Security-Policy allows scripts from this site only.
  app.get(PROGRESS_SCRIPT, ADMIN, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(PROGRESS_SCRIPT_SOURCE));

  app.get('/admin/upgrade/progress', { ...ADMIN, preHandler: requireAdmin }, async () => ({
    running: webUpgrade?.running ?? false,
    outcome: webUpgrade?.outcome ?? null,
    error: webUpgrade?.error ?? null,
    lines: webUpgrade?.lines ?? [],
  }));

  app.post('/admin/upgrade', { ...ADMIN, preHandler: [requireAdmin, csrfCheck] }, async (_request, reply) => {
    await front.refresh();
    const state = front.state();
    const refuse = (message: string) => reply.code(409).type('text/html; charset=utf-8').send(page('Upgrade', html`<div class="notice error">${message}</div><p><a href="/admin/upgrade">Back</a></p>`, { admin: true }));
    if (state.flags.uiUpgradeLock) return refuse('The UI upgrade lock is set: upgrades are run from the command line.');
    if (state.upgrade || webUpgrade?.running) return refuse('Another upgrade is running.');
    if (!front.view().pending) return refuse('No upgrade is pending.');

    const run: WebUpgrade = { running: true, lines: [], outcome: 'running', error: undefined };
    webUpgrade = run;
    // The run outlives this request: the page follows it through /admin/upgrade/progress.
    void runUpgrade({
      database: front.database,
      code: front.code,
      mode: 'maintenance',
      // The page's first line says the run has begun; the lock is an operator detail there.
      onEvent: (event) => run.lines.push(event.kind === 'lock-acquired' ? `Upgrade started (${event.holder.mode} mode)` : describeUpgradeEvent(event)),
    })
      .then((result) => {
        run.outcome = 'succeeded';
        run.lines.push(result.kind === 'upgraded' ? `Upgrade complete in ${(result.durationMs / 1000).toFixed(2)} s` : 'Nothing to do');
      })
      .catch((error: unknown) => {
        run.outcome = 'failed';
        run.error = isOutagelessError(error) ? `${error.code}: ${error.message}` : String(error);
        app.log.error({ err: error }, 'outageless: web upgrade failed');
      })
      .finally(async () => {
        await front.refresh();
        run.running = false;
      });
    return reply.redirect('/admin/upgrade', 303);
  });

  return { webUpgradeRunning: () => webUpgrade?.running === true };
}
