import type { FastifyInstance } from 'fastify';
import type { Plan } from '../plan/plan.ts';
import type { FrontRecord } from '../runtime/front-registry.ts';
import type { Front } from '../runtime/front.ts';
import { pausableComponent } from '../runtime/operator-actions.ts';
import type { SiteState } from '../runtime/site-state.ts';
import type { OperatorLogRow } from '../state/operator-log.ts';
import { html, LOCAL_TIME_SCRIPT, timeTag, type SafeHtml } from './html.ts';

/**
 * The admin dashboard's sections that act (src/fastify/admin-actions.ts takes their POSTs):
 * the site's switches, the components with their versions and pause/resume, recent operator
 * actions, the pending-upgrade banner, and the script that shows times in local time.
 */

const ADMIN = { config: { outageless: { area: 'admin' as const } } };

/**
 * Rewrites every `<time datetime>` to local time plus its age ("3 min. ago"), and keeps the
 * ages current. A file, not an inline script: the Content-Security-Policy allows scripts from
 * this site only. The UTC text stays in the title.
 */
const LOCAL_TIME_SCRIPT_SOURCE = `const units = [['year', 31536e6], ['month', 2592e6], ['day', 864e5], ['hour', 36e5], ['minute', 6e4], ['second', 1e3]];
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
function age(ms) {
  for (const [unit, size] of units) if (Math.abs(ms) >= size || unit === 'second') return relative.format(-Math.round(ms / size), unit);
}
function render() {
  for (const element of document.querySelectorAll('time[datetime]')) {
    const at = new Date(element.getAttribute('datetime'));
    if (Number.isNaN(at.getTime())) continue;
    if (!element.title) element.title = element.textContent;
    element.textContent = at.toLocaleString() + ' (' + age(Date.now() - at.getTime()) + ')';
    element.dataset.local = 'true';
  }
}
render();
setInterval(render, 15000);
new MutationObserver(() => { if (document.querySelector('time[datetime]:not([data-local])')) render(); }).observe(document.body, { childList: true, subtree: true });
`;

/**
 * Serves the local-time script every admin page loads (see `page()` in html.ts).
 *
 * @example
 * ```ts
 * registerDashboardAssets(app) // GET /admin/assets/local-time.js
 * ```
 */
export function registerDashboardAssets(app: FastifyInstance): void {
  app.get(LOCAL_TIME_SCRIPT, ADMIN, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(LOCAL_TIME_SCRIPT_SOURCE));
}

/**
 * A front by its URL first, then host and pid: `http://127.0.0.1:3000 (web1, pid 123)`.
 *
 * @example
 * ```ts
 * frontName({ url: null, host: 'web1', pid: 9 }) // => 'web1, pid 9 (no URL yet)'
 * ```
 */
export function frontName(front: Pick<FrontRecord, 'url' | 'host' | 'pid'>): string {
  return front.url ? `${front.url} (${front.host}, pid ${front.pid})` : `${front.host}, pid ${front.pid} (no URL yet)`;
}

/**
 * The banner of a pending upgrade: red "needs maintenance" with the reasons, or green "needs
 * no maintenance" naming what a staged run pauses. Undefined when nothing is pending.
 *
 * @example
 * ```ts
 * html`${pendingUpgradeBanner(front.plan(), 'upgrade-prompt')}`
 * ```
 */
export function pendingUpgradeBanner(plan: Plan, id: string, lead = 'An upgrade is pending: the code on this server is newer than the database.'): SafeHtml | undefined {
  if (plan.pending.length === 0) return undefined;
  if (plan.maintenanceRequired) {
    return html`<div class="notice needs-maintenance" id="${id}" data-maintenance="required"><p>${lead} <strong>It needs maintenance:</strong> the site answers 503 while it runs.</p>
      <ul class="reasons">${plan.maintenanceReasons.map((reason) => html`<li>${reason}</li>`)}</ul></div>`;
  }
  return html`<div class="notice no-maintenance" id="${id}" data-maintenance="none"><p>${lead} <strong>It needs no maintenance:</strong> the site keeps serving while it runs${plan.pauses.length > 0 ? `; these components pause one at a time: ${plan.pauses.join(', ')}` : ''}.</p></div>`;
}

const hidden = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;

/** A one-button form posting to `action` (with extra hidden fields). */
function button(action: string, token: string, label: string, fields: Readonly<Record<string, string>> = {}, id?: string): SafeHtml {
  return html`<form method="post" action="${action}" class="inline">${hidden(token)}${Object.entries(fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}<button type="submit"${id ? html` id="${id}"` : ''}>${label}</button></form>`;
}

/**
 * The site's switches: maintenance on (with its message) or off, purge every cache, and the
 * UI upgrade lock.
 *
 * @example
 * ```ts
 * html`<h2>Site</h2>${flagsTable(state)}${siteActionsSection(state, csrfToken(request, reply))}`
 * ```
 */
export function siteActionsSection(state: SiteState, token: string): SafeHtml {
  const { maintenance, uiUpgradeLock } = state.flags;
  return html`<div class="actions-row" id="site-actions">
    ${maintenance.enabled
      ? button('/admin/actions/maintenance', token, 'Turn maintenance off', { enabled: 'off' }, 'maintenance-off')
      : html`<form method="post" action="/admin/actions/maintenance" class="inline" id="maintenance-on-form">${hidden(token)}<input type="hidden" name="enabled" value="on">
          <label>Message on the 503 page <input type="text" name="message" maxlength="500" placeholder="Back at 10:00"></label> <button type="submit" id="maintenance-on">Turn maintenance on</button></form>`}
    ${button('/admin/actions/purge-caches', token, 'Purge all caches', { component: '' }, 'purge-all')}
    ${uiUpgradeLock
      ? button('/admin/actions/ui-lock', token, 'Clear the UI upgrade lock', { lock: 'clear' }, 'ui-lock-clear')
      : button('/admin/actions/ui-lock', token, 'Set the UI upgrade lock', { lock: 'set' }, 'ui-lock-set')}
  </div>`;
}

/** "installed → code" when they differ, else the one value. */
function pair(installed: string | number | null | undefined, code: string | number | null | undefined): string {
  const a = installed ?? '—';
  const b = code ?? '—';
  return a === b ? String(a) : `${a} → ${b}`;
}

/**
 * Every component, installed or on disk: installed and code versions, release and code
 * increment (database → this front's code when they differ), its state, and its buttons.
 *
 * @example
 * ```ts
 * html`<h2>Components</h2>${componentsSection(front, front.state(), token)}`
 * ```
 */
export function componentsSection(front: Front, state: SiteState, token: string): SafeHtml {
  const names = [...new Set([...front.code.components.keys(), ...(state.installed?.keys() ?? [])])];
  return html`<table id="components"><thead><tr><th>Component</th><th>Installed version</th><th>Code version</th><th>Release</th><th>Code increment</th><th>State</th><th>Actions</th></tr></thead><tbody>
    ${names.map((name) => {
      const code = front.code.components.get(name);
      const installed = state.installed?.get(name);
      const paused = state.componentStates.get(name);
      let pausable = false;
      try {
        if (code) {
          pausableComponent(front.code, name);
          pausable = true;
        }
      } catch {
        // Not disableable, core or a subplugin: no pause button (the CLI would refuse it too).
      }
      const stateCell = !paused
        ? html`<td class="state-normal" data-state="normal">normal</td>`
        : html`<td class="state-${paused.state === 'maintenance' ? 'paused' : 'post-install'}" data-state="${paused.state === 'maintenance' ? 'paused' : 'post-install'}">${paused.state === 'maintenance' ? 'paused' : 'post-install (admins only)'}${paused.reason ? `: ${paused.reason}` : ''}, since ${timeTag(paused.since)}${paused.pausedByRun ? ` by upgrade run ${paused.pausedByRun}` : ''}</td>`;
      // A pause an upgrade run holds is the run's while an upgrade runs (the action would be
      // refused); one a finished run left behind (post-install) is the operator's to end.
      const held = paused?.pausedByRun !== null && paused?.pausedByRun !== undefined && state.upgrade !== undefined;
      const toggle = !pausable || held
        ? ''
        : paused
          ? button('/admin/actions/resume', token, 'Resume', { component: name })
          : button('/admin/actions/pause', token, 'Pause', { component: name });
      return html`<tr data-component="${name}"><td>${name}${code ? '' : ' (code not on this front)'}</td>
        <td>${installed?.version ?? 'not installed'}</td><td>${code?.manifest.version ?? '—'}</td>
        <td>${pair(installed?.release, code?.manifest.release)}</td><td>${pair(installed?.codeIncrement, code?.manifest.codeIncrement)}</td>
        ${stateCell}<td>${toggle}${code ? button('/admin/actions/purge-caches', token, 'Purge caches', { component: name }) : ''}</td></tr>`;
    })}
  </tbody></table>`;
}

const ACTION_LABELS: Readonly<Record<string, string>> = {
  'maintenance-on': 'maintenance on',
  'maintenance-off': 'maintenance off',
  pause: 'pause',
  resume: 'resume',
  'purge-caches': 'purge caches',
  'ui-lock-set': 'set UI upgrade lock',
  'ui-lock-clear': 'clear UI upgrade lock',
};

/**
 * The operator log's latest rows (undefined: it could not be read).
 *
 * @example
 * ```ts
 * html`<h2>Recent actions</h2>${recentActionsSection(await readOperatorLog(db).catch(() => undefined))}`
 * ```
 */
export function recentActionsSection(rows: readonly OperatorLogRow[] | undefined): SafeHtml {
  if (rows === undefined) return html`<div class="notice error" id="recent-actions">Recent actions could not be read from the site database.</div>`;
  if (rows.length === 0) return html`<p id="recent-actions">No operator action yet.</p>`;
  return html`<table id="recent-actions"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th><th>Outcome</th><th>Detail</th></tr></thead><tbody>
    ${rows.map((row) => html`<tr data-action="${row.action}" data-outcome="${row.outcome}"><td>${timeTag(row.at)}</td>
      <td>${row.actor.kind === 'web' ? `web, ${row.actor.client}${row.actor.sessionHash ? `, session ${row.actor.sessionHash.slice(0, 8)}` : ''}` : `cli, ${row.actor.client}`}</td>
      <td>${ACTION_LABELS[row.action] ?? row.action}</td><td>${row.target ?? '—'}</td>
      <td class="outcome-${row.outcome}">${row.outcome}${row.errorCode ? html` <code>${row.errorCode}</code>` : ''}</td><td>${row.detail ?? ''}</td></tr>`)}
  </tbody></table>`;
}
