import type { UpgradeLockHolder } from '../database/upgrade-lock.ts';
import type { CachePurgePlan, Plan, PlanItem } from '../plan/plan.ts';
import type { SiteFlags } from '../state/flags.ts';

/** Text and JSON renderings of plans and state, shared by `upgrade` and `status`. */

function version(value: number | undefined): string {
  return value === undefined ? '-' : String(value);
}

function itemLine(item: PlanItem, width: number): string {
  const change = item.action === 'install'
    ? `(new) -> ${version(item.codeVersion)}`
    : item.action === 'missing-from-disk'
      ? `${version(item.installedVersion)} -> (missing)`
      : item.action === 'unchanged'
        ? `${version(item.installedVersion)}`
        : `${version(item.installedVersion)} -> ${version(item.codeVersion)}`;
  const label = item.action === 'unchanged' ? 'up to date' : item.action === 'missing-from-disk' ? 'missing' : item.action === 'behind' ? 'code behind database' : item.outage;
  const head = `  ${item.component.padEnd(width)}  ${change.padEnd(25)}  ${label}`;
  return [head, ...item.reasons.map((reason) => `  ${''.padEnd(width)}    - ${reason}`)].join('\n');
}

/**
 * The plan's headline: how many components are pending, the class, and whether maintenance is
 * required, with the reason when no row can give it (a fresh install).
 *
 * @example
 * ```ts
 * planSummary(plan) // '6 component(s) pending; outage class none; maintenance is NOT required.'
 * ```
 */
export function planSummary(plan: Plan): string {
  if (plan.pending.length === 0) return 'No upgrade is pending.';
  // Every row of a fresh install is additive (none): the class comes from the site not being up yet.
  const why = plan.siteInstalled ? '' : ": a fresh install runs in maintenance mode (each row's class none is that component's own install, which is additive)";
  const maintenance = plan.maintenanceRequired ? `maintenance IS required${why}` : 'maintenance is NOT required';
  const staged = !plan.maintenanceRequired && plan.pauses.length > 0 ? ` Staged: ${plan.pauses.join(', ')} pause(s) one at a time.` : '';
  return `${plan.pending.length} component(s) pending; outage class ${plan.outage}; ${maintenance}.${staged}`;
}

/**
 * The plan as a table: the pending items under the headline that counts them, then (under
 * their own heading) the items that are not pending but worth a line: an unchanged component
 * with a reason (a code increment, db/ changed without a bump), code missing from disk or
 * behind the database. `all` lists every unchanged component there too.
 */
export function formatPlan(plan: Plan, options: { all?: boolean } = {}): string {
  const pendingItems = new Set(plan.pending);
  const noted = plan.items.filter((item) => !pendingItems.has(item) && (options.all || item.action !== 'unchanged' || item.reasons.length > 0));
  const width = Math.max(12, ...[...plan.pending, ...noted].map((item) => item.component.length));
  const gates = plan.gates.map((gate) => `  ${gate.component}/${gate.step} is gated on ${gate.prerequisite}: ${gate.progress}\n    finish it with: ${gate.command}`);
  const owed = plan.owedPost.map((owed) => `  ${owed.component}/${owed.step} (${owed.version}), owed since ${owed.since.toISOString()}: outageless upgrade --phase post`);
  return [
    planSummary(plan),
    ...plan.pending.map((item) => itemLine(item, width)),
    ...(noted.length > 0 ? [`Not pending (${noted.length}):`, ...noted.map((item) => itemLine(item, width))] : []),
    ...(gates.length > 0 ? ['Refused until finished (finalization gates):', ...gates] : []),
    ...(owed.length > 0 ? ['Owed post steps (they run once no live front runs the old code):', ...owed] : []),
  ].join('\n');
}

/**
 * The commands an operator runs after cutover when the upgrade did not purge caches itself:
 * one full purge for `all`, one per component for `own` (other components keep their caches).
 *
 * @example
 * ```ts
 * purgeCommands({ kind: 'own', components: ['mod_assign'] }) // => ['outageless purge-caches --component mod_assign']
 * ```
 */
export function purgeCommands(purge: CachePurgePlan): string[] {
  if (purge.kind === 'none') return [];
  if (purge.kind === 'all') return ['outageless purge-caches'];
  return purge.components.map((component) => `outageless purge-caches --component ${component}`);
}

export function formatFlags(flags: SiteFlags, holder: UpgradeLockHolder | undefined): string {
  return [
    `maintenance:      ${flags.maintenance.enabled ? `ON${flags.maintenance.message ? ` (${flags.maintenance.message})` : ''}` : holder?.mode === 'maintenance' ? 'ON (maintenance-mode upgrade running)' : 'off'}`,
    `upgrade running:  ${holder ? `yes, ${holder.mode} mode (host ${holder.host}, pid ${holder.pid}, since ${holder.since.toISOString()})` : 'no'}`,
    `ui upgrade lock:  ${flags.uiUpgradeLock ? 'SET' : 'not set'}`,
    `cache revision:   ${flags.cacheRevision}`,
  ].join('\n');
}

/** A plan as plain JSON: the same facts as the text, without loaded code. */
export function planToJson(plan: Plan): Record<string, unknown> {
  return {
    siteInstalled: plan.siteInstalled,
    pending: plan.pending.length > 0,
    // The count the text headline gives; `components` lists every item, each with its `pending`.
    pendingCount: plan.pending.length,
    summary: planSummary(plan),
    outage: plan.outage,
    maintenanceRequired: plan.maintenanceRequired,
    pauses: plan.pauses,
    maintenanceReasons: plan.maintenanceReasons,
    purgeCaches: plan.purgeCaches,
    gates: plan.gates,
    owedPost: plan.owedPost,
    components: plan.items.map((item) => ({
      component: item.component,
      action: item.action,
      pending: plan.pending.includes(item),
      installedVersion: item.installedVersion ?? null,
      codeVersion: item.codeVersion ?? null,
      release: item.release ?? null,
      codeIncrement: item.codeIncrement ?? null,
      outage: item.outage,
      reasons: item.reasons,
      changedFiles: item.changedFiles,
      steps: item.steps.map((step) => ({
        id: step.id,
        version: step.version,
        outage: step.outage,
        declaredOutage: step.declaredOutage,
        declared: step.declared,
        findings: step.findings,
        phase: step.phase,
        alreadyApplied: step.alreadyApplied,
      })),
    })),
  };
}
