import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify';
import { errors, isOutagelessError } from '../errors.ts';
import type { UpgradeLockHolder } from '../database/upgrade-lock.ts';
import { waitForInFlightJobs } from '../jobs/in-flight.ts';
import type { Plan } from '../plan/plan.ts';
import { listFronts } from '../runtime/front-registry.ts';
import type { Front } from '../runtime/front.ts';
import { decide, UPGRADING_MESSAGE } from '../runtime/guard.ts';
import type { SiteState } from '../runtime/site-state.ts';
import { readInstalled } from '../state/installed.ts';
import { findUpgradeRun, readLiveRun, readRunEvents, readUpgradeRuns, runToJson, type UpgradeRunRecord } from '../state/upgrade-history.ts';
import { errorText } from '../upgrade/run-record.ts';
import { runUpgrade } from '../upgrade/run.ts';
import { adminHistoryRoutes } from './admin-history.ts';
import { html, page, raw, timeTag, type SafeHtml } from './html.ts';
import { sendUnavailable } from './unavailable.ts';

/**
 * The admin upgrade pages (Moodle's admin/index.php upgrade prompt): the plan with "Upgrade
 * now", the confirmation page that says which mode the run will use, and the live progress of
 * the running upgrade, whichever process started it (the runner records its lines in the
 * database, src/upgrade/run-record.ts). Registered by `adminRoutes` inside its context, so the
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
  /** True from an "Upgrade now" POST of this front until its run has ended. */
  readonly webUpgradeRunning: () => boolean;
}

const ADMIN = { config: { outageless: { area: 'admin' as const } } };

/** The mode a confirmed upgrade runs in, as the plan's class decides it. */
export type WebUpgradeMode =
  /** Class `none`: no maintenance, no pause. */
  | { readonly kind: 'online' }
  /** Class `component`: online, pausing these components one at a time (`upgrade --no-maintenance`). */
  | { readonly kind: 'staged'; readonly pauses: readonly string[] }
  /** Class `site` (or a fresh install): the site answers 503 while it runs. */
  | { readonly kind: 'maintenance'; readonly reasons: readonly string[] };

/**
 * The mode `upgrade` would accept with the least outage: online when the plan needs no
 * maintenance, staged when that means pausing components, maintenance otherwise.
 *
 * @example
 * ```ts
 * upgradeModeFor(front.plan()) // => { kind: 'staged', pauses: ['mod_forum'] }
 * ```
 */
export function upgradeModeFor(plan: Plan): WebUpgradeMode {
  if (plan.maintenanceRequired) return { kind: 'maintenance', reasons: plan.maintenanceReasons };
  return plan.pauses.length > 0 ? { kind: 'staged', pauses: plan.pauses } : { kind: 'online' };
}

/**
 * A short hash of what a confirmation promised: every pending change, its class and steps,
 * and the mode. The POST refuses when the plan it would run hashes differently.
 *
 * @example
 * ```ts
 * html`<input type="hidden" name="plan" value="${planFingerprint(front.plan())}">`
 * ```
 */
export function planFingerprint(plan: Plan): string {
  const facts = {
    outage: plan.outage,
    maintenanceRequired: plan.maintenanceRequired,
    pauses: plan.pauses,
    pending: plan.pending.map((item) => ({
      component: item.component, action: item.action, from: item.installedVersion ?? null, to: item.codeVersion ?? null, outage: item.outage,
      steps: item.steps.map((step) => [step.id, step.version, step.outage, step.phase, step.alreadyApplied]),
    })),
    owedPost: plan.owedPost.map((owed) => [owed.component, owed.step]),
  };
  return createHash('sha256').update(JSON.stringify(facts)).digest('hex').slice(0, 32);
}

/** The live progress: polls the run's lines from the database until it ends, then reloads. */
const PROGRESS_SCRIPT = '/admin/assets/upgrade-progress.js';
const PROGRESS_SCRIPT_SOURCE = `const box = document.getElementById('upgrade-progress');
const timer = setInterval(async () => {
  const res = await fetch('/admin/upgrade/progress?run=' + encodeURIComponent(box.dataset.run), { headers: { accept: 'application/json' } });
  if (!res.ok) return;
  const p = await res.json();
  box.textContent = p.lines.join('\\n');
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

/** What the confirmation page says the run will do to the site. */
function modeNotice(plan: Plan, mode: WebUpgradeMode): SafeHtml {
  switch (mode.kind) {
    case 'online':
      return html`<div class="notice no-maintenance" id="upgrade-mode" data-mode="online">Outage class <strong>${plan.outage}</strong>: the upgrade runs <strong>online</strong>, without maintenance. Every front keeps serving while it runs.</div>`;
    case 'staged':
      return html`<div class="notice no-maintenance" id="upgrade-mode" data-mode="staged">Outage class <strong>${plan.outage}</strong>: the upgrade runs <strong>staged</strong>, without site maintenance. These components are paused one at a time while their steps run (their pages answer 503, the rest of the site serves): ${mode.pauses.join(', ')}.</div>`;
    case 'maintenance':
      return html`<div class="notice needs-maintenance" id="upgrade-mode" data-mode="maintenance">Outage class <strong>${plan.outage}</strong>: the upgrade runs in <strong>maintenance mode</strong>. The site answers 503 to everyone but admins on this page while it runs, because:
        <ul class="reasons">${mode.reasons.map((reason) => html`<li>${reason}</li>`)}</ul></div>`;
  }
}

/**
 * The banner of a running upgrade. Only a maintenance-mode run says "please retry later": an
 * online (or staged) run leaves the site serving, so it says that, with who runs it.
 */
function runningUpgradeNotice(holder: UpgradeLockHolder | undefined, run: UpgradeRunRecord | undefined): SafeHtml {
  const who = run
    ? html`started by ${run.startedBy} on ${run.host}, pid ${run.pid}, at ${timeTag(run.startedAt)}`
    : holder ? html`on ${holder.host}, pid ${holder.pid}, since ${timeTag(holder.since)}` : html`by another process`;
  if (holder?.mode === 'maintenance' || (!holder && run?.mode === 'maintenance')) {
    return html`<div class="notice warn" id="upgrade-running" data-mode="maintenance">${UPGRADING_MESSAGE}. A maintenance-mode upgrade is running, ${who}.</div>`;
  }
  const staged = run?.mode === 'staged';
  return html`<div class="notice info" id="upgrade-running" data-mode="${staged ? 'staged' : 'online'}">An online upgrade is running${staged ? ' (staged: components pause one at a time)' : ''}, ${who}. The site keeps serving.</div>`;
}

/** The lines the page and the progress endpoint show for a run. */
async function progressOf(front: Front, run: UpgradeRunRecord) {
  const events = await readRunEvents(front.database.autocommit, run.runId);
  const error = run.error ? (run.error.code ? `${run.error.code}: ${run.error.message}` : run.error.message) : null;
  return { running: run.status === 'running', outcome: run.status, error, lines: events.map((event) => event.message) };
}

/**
 * Registers /admin/upgrade (the page), /admin/upgrade/confirm, the POST that starts the run,
 * the progress endpoint with its script, and /admin/history (admin-history.ts).
 *
 * @example
 * ```ts
 * const upgrades = await adminUpgradeRoutes(app, { front, requireAdmin, csrfCheck, csrfToken, flagsTable, frontsSection })
 * if (upgrades.webUpgradeRunning()) refuse(409, 'An upgrade is running')
 * ```
 */
export async function adminUpgradeRoutes(app: FastifyInstance, context: AdminRouteContext): Promise<AdminUpgradeRoutes> {
  const { front, requireAdmin, csrfCheck, csrfToken } = context;
  // Set by this front's POST before the run takes the lock, so a second click meanwhile is refused.
  let webRunning = false;
  /** The run this front started, while it is in flight: what the page follows without `?run`. */
  let webRunId: string | undefined;
  // Fronts read runs on the database's own-commit view: on PGlite, db would read inside a
  // step's open transaction.
  const reader = () => front.database.autocommit;

  /** The run a page or poll is about: the one named, else the running one, else the last. */
  const chosenRun = async (runId: string | undefined): Promise<UpgradeRunRecord | undefined> => {
    if (runId) {
      const found = await findUpgradeRun(reader(), runId, { lock: front.database.upgradeLock });
      return found.kind === 'found' ? found.run : undefined;
    }
    // This front's own run first while it is in flight: its rows are written on another
    // connection and may not be visible yet, and it must never read as an older run.
    if (webRunning && webRunId) {
      const own = await findUpgradeRun(reader(), webRunId, { lock: front.database.upgradeLock });
      if (own.kind === 'found') return own.run;
    }
    return (await readLiveRun(reader(), front.database.upgradeLock)) ?? (await readUpgradeRuns(reader(), { limit: 1, lock: front.database.upgradeLock }))[0];
  };

  const sendPage = (reply: FastifyReply, status: number, title: string, body: SafeHtml, token?: string) =>
    reply.code(status).type('text/html; charset=utf-8').send(page(title, body, { admin: true, ...(token ? { csrfToken: token } : {}) }));

  /** Why no upgrade may start now, or undefined. The POST re-reads the state first. */
  const refusal = (state: SiteState): string | undefined => {
    if (state.flags.uiUpgradeLock) return 'The UI upgrade lock is set: upgrades are run from the command line.';
    if (state.upgrade || webRunning) return 'Another upgrade is running.';
    if (!front.view().pending) return 'No upgrade is pending.';
    return undefined;
  };

  app.get<{ Querystring: { run?: string } }>('/admin/upgrade', { ...ADMIN, preHandler: requireAdmin }, async (request, reply) => {
    const state = front.state();
    const verdict = decide(state, front.view(), { kind: 'admin-upgrade', isAdmin: true });
    if (verdict.kind === 'unavailable') return sendUnavailable(request, reply, verdict);
    const run = await chosenRun(request.query.run).catch((error: unknown) => void request.log.warn({ err: error }, 'outageless: upgrade runs unreadable'));
    const running = state.upgrade !== undefined || webRunning || run?.status === 'running';
    const pending = front.view().pending;
    const canUpgrade = pending && !running && !state.flags.uiUpgradeLock;
    const token = csrfToken(request, reply);
    const plan = front.plan();
    const notice = running
      ? runningUpgradeNotice(state.upgrade, run?.status === 'running' ? run : undefined)
      : state.flags.uiUpgradeLock && pending
        ? html`<div class="notice info" id="ui-locked">The upgrade is managed from the command line (UI upgrade lock set).</div>`
        : pending
          ? html`<div class="notice ${plan.maintenanceRequired ? 'needs-maintenance' : 'no-maintenance'}" id="upgrade-prompt">An upgrade is pending: the code on this server is newer than the database.${plan.maintenanceRequired ? ' It needs maintenance: the site answers 503 while it runs.' : ' It needs no maintenance.'}</div>`
          : html`<div class="notice info">No upgrade is pending.</div>`;
    const progress = run ? await progressOf(front, run) : undefined;
    return sendPage(reply, 200, 'Upgrade', html`
      <nav><a href="/admin">Site administration</a><a href="/admin/history" id="history-link">Upgrade history</a></nav>
      ${notice}
      ${canUpgrade ? html`<form method="get" action="/admin/upgrade/confirm" id="upgrade-form"><button class="primary" type="submit" id="upgrade-now">Upgrade now</button></form>` : ''}
      ${run && progress ? html`<h2>${progress.running ? 'Progress' : 'Last upgrade'}</h2>
        <p>Run <a href="/admin/history?run=${run.runId}"><code>${run.runId.slice(0, 8)}</code></a>, ${run.mode ?? 'mode not recorded'} mode, started ${run.startedBy ? `by ${run.startedBy} ` : ''}at ${timeTag(run.startedAt)}</p>
        <p id="upgrade-outcome">${progress.outcome}${progress.error ? `: ${progress.error}` : ''}</p><pre class="progress" id="upgrade-progress" data-run="${run.runId}">${progress.lines.join('\n')}</pre>` : ''}
      <h2>Plan</h2>${planTable(plan)}
      <h2>Site</h2>${context.flagsTable(state)}
      <h2>Fronts</h2>${await context.frontsSection()}
      ${progress?.running ? raw(`<script src="${PROGRESS_SCRIPT}" defer></script>`) : ''}`, token);
  });

  // "Upgrade now" leads here: what will run, its class and the mode, then a confirm button.
  app.get('/admin/upgrade/confirm', { ...ADMIN, preHandler: requireAdmin }, async (request, reply) => {
    const state = front.state();
    const verdict = decide(state, front.view(), { kind: 'admin-upgrade', isAdmin: true });
    if (verdict.kind === 'unavailable') return sendUnavailable(request, reply, verdict);
    const token = csrfToken(request, reply);
    const refused = refusal(state);
    if (refused) return sendPage(reply, 409, 'Confirm the upgrade', html`<div class="notice error" id="upgrade-refused">${refused}</div><p><a href="/admin/upgrade">Back</a></p>`, token);
    const plan = front.plan();
    const mode = upgradeModeFor(plan);
    return sendPage(reply, 200, 'Confirm the upgrade', html`
      <nav><a href="/admin/upgrade">Upgrade</a><a href="/admin/history">Upgrade history</a></nav>
      ${modeNotice(plan, mode)}
      <h2>Plan</h2>${planTable(plan)}
      <form method="post" action="/admin/upgrade" id="confirm-form">
        <input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="plan" value="${planFingerprint(plan)}">
        <button class="primary" type="submit" id="confirm-upgrade">Confirm: upgrade ${mode.kind === 'maintenance' ? 'in maintenance mode' : mode.kind === 'staged' ? 'staged, without site maintenance' : 'online, without maintenance'}</button>
        <a href="/admin/upgrade">Cancel</a>
      </form>`, token);
  });

  // A file, not an inline script: the Content-Security-Policy allows scripts from this site only.
  app.get(PROGRESS_SCRIPT, ADMIN, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(PROGRESS_SCRIPT_SOURCE));

  // The run's lines from the database: a run of any process, on any front.
  app.get<{ Querystring: { run?: string } }>('/admin/upgrade/progress', { ...ADMIN, preHandler: requireAdmin }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const run = await chosenRun(request.query.run);
    if (!run) return { running: webRunning, outcome: null, error: null, lines: [], run: null };
    const progress = await progressOf(front, run);
    // Until this front's run has returned, it is running, whatever its row says so far.
    if (webRunning && run.runId === webRunId && !progress.running) return { ...progress, running: true, outcome: 'running', run: runToJson(run) };
    return { ...progress, run: runToJson(run) };
  });

  app.post<{ Body: { plan?: string } }>('/admin/upgrade', { ...ADMIN, preHandler: [requireAdmin, csrfCheck] }, async (request, reply) => {
    await front.refresh();
    const refuse = (status: number, message: SafeHtml | string) =>
      sendPage(reply, status, 'Upgrade', html`<div class="notice error" id="upgrade-refused">${message}</div><p><a href="/admin/upgrade">Back</a></p>`);
    const refused = refusal(front.state());
    if (refused) return refuse(409, refused);
    const plan = front.plan();
    const given = request.body?.plan;
    if (!given) return refuse(400, html`Confirm the upgrade on its <a href="/admin/upgrade/confirm">confirmation page</a>: this form did not say which plan it confirms.`);
    if (given !== planFingerprint(plan)) {
      return refuse(409, html`The plan changed since the confirmation page was shown (new code, or another upgrade ran): <a href="/admin/upgrade/confirm">review it again</a>.`);
    }

    const mode = upgradeModeFor(plan);
    webRunning = true;
    let startedRun: (runId: string) => void = () => {};
    const started = new Promise<string>((resolve) => (startedRun = resolve));
    const database = front.database;
    // The run outlives this request: the page follows it through the database.
    const running = runUpgrade({
      database,
      code: front.code,
      mode: mode.kind === 'maintenance' ? 'maintenance' : 'online',
      startedBy: 'web',
      onEvent: (event) => {
        if (event.kind === 'lock-acquired') {
          webRunId = event.runId;
          startedRun(event.runId);
        }
      },
      onRecordWarning: (message) => app.log.warn(message),
      // As `upgrade --no-maintenance` does: a paused component's jobs finish first, and post
      // steps wait for old fronts.
      drainComponent: (component) => waitForInFlightJobs(database, [component, ...[...front.code.components.values()].filter((c) => c.parent === component).map((c) => c.name)], { timeoutMs: 60_000 }),
      liveFronts: async () => listFronts(database.db, await readInstalled(database.db)),
    });
    const ended = running.then(
      () => undefined,
      (error: unknown) => {
        app.log.error({ err: error }, 'outageless: web upgrade failed');
        return error;
      },
    );
    void ended.finally(async () => {
      await front.refresh().catch(() => {});
      webRunning = false;
      webRunId = undefined;
    });
    const first = await Promise.race([started.then((runId) => ({ kind: 'started' as const, runId })), ended.then((error) => ({ kind: 'ended' as const, error }))]);
    if (first.kind === 'ended') {
      // It ended before taking the lock: another upgrader won the race, or the plan refused.
      if (first.error === undefined) return reply.redirect('/admin/upgrade', 303);
      if (isOutagelessError(first.error, errors.upgradeLocked.code)) return refuse(409, 'Another upgrade is running.');
      return refuse(409, errorText(first.error));
    }
    // Its row is written on its own connection, just after the lock: wait briefly so the page shows it.
    for (let waited = 0; waited < 2000; waited += 50) {
      if ((await findUpgradeRun(reader(), first.runId).catch(() => undefined))?.kind === 'found') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return reply.redirect(`/admin/upgrade?run=${encodeURIComponent(first.runId)}`, 303);
  });

  await adminHistoryRoutes(app, context);
  return { webUpgradeRunning: () => webRunning };
}
