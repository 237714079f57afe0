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

/** The plan as a table: every pending item (or every item when `all`), with reasons. */
export function formatPlan(plan: Plan, options: { all?: boolean } = {}): string {
  const shown = options.all ? plan.items : plan.items.filter((item) => item.action !== 'unchanged' || item.reasons.length > 0);
  const width = Math.max(12, ...shown.map((item) => item.component.length));
  const summary = plan.pending.length === 0
    ? 'No upgrade is pending.'
    : `${plan.pending.length} component(s) pending; outage class ${plan.outage}; maintenance ${plan.maintenanceRequired ? 'IS required' : 'is NOT required'}.${!plan.maintenanceRequired && plan.pauses.length > 0 ? ` Staged: ${plan.pauses.join(', ')} pause(s) one at a time.` : ''}`;
  const gates = plan.gates.map((gate) => `  ${gate.component}/${gate.step} is gated on ${gate.prerequisite}: ${gate.progress}\n    finish it with: ${gate.command}`);
  const owed = plan.owedPost.map((owed) => `  ${owed.component}/${owed.step} (${owed.version}), owed since ${owed.since.toISOString()}: outageless upgrade --phase post`);
  return [
    summary,
    ...shown.map((item) => itemLine(item, width)),
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
