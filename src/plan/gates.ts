import type { SiteCode } from '../component/discover.ts';
import { loadUpgrade } from '../component/files.ts';
import { errors } from '../errors.ts';
import type { InstalledComponent } from '../state/installed.ts';
import type { PlanItem, PrerequisiteStates, UnfinishedGate } from './plan.ts';

/**
 * Finalization gates (DESIGN §4.6, GitLab's `ensure_batched_background_migration_is_finished`):
 * a pending step may name work that must be finished before it runs (`after:`). A plan with
 * an unfinished prerequisite is refused before anything runs; one that names nothing known is
 * bad input.
 *
 * A prerequisite is finished when:
 * - it is a background migration and its row says `finished`;
 * - it is a step recorded as applied, or its component was installed (or upgraded) past its
 *   version without it, as a fresh install does: the schema it leads to was created whole.
 *
 * @example
 * ```ts
 * const gates = await findGates(code, installed, appliedSteps, pending, prerequisites)
 * if (gates.length > 0) throw errors.unfinishedPrerequisite(gates)
 * ```
 */
export async function findGates(
  code: SiteCode,
  installed: ReadonlyMap<string, InstalledComponent> | undefined,
  appliedSteps: ReadonlyMap<string, ReadonlySet<string>>,
  pending: readonly PlanItem[],
  prerequisites: PrerequisiteStates | undefined,
): Promise<UnfinishedGate[]> {
  const gates: UnfinishedGate[] = [];
  for (const item of pending) {
    for (const step of item.steps) {
      if (step.alreadyApplied) continue;
      for (const prerequisite of step.after) {
        const progress = await prerequisiteProgress(code, installed, appliedSteps, pending, prerequisites, item, step.id, prerequisite);
        if (progress) gates.push({ component: item.component, step: step.id, prerequisite, ...progress });
      }
    }
  }
  return gates;
}

async function prerequisiteProgress(
  code: SiteCode,
  installed: ReadonlyMap<string, InstalledComponent> | undefined,
  appliedSteps: ReadonlyMap<string, ReadonlySet<string>>,
  pending: readonly PlanItem[],
  prerequisites: PrerequisiteStates | undefined,
  item: PlanItem,
  stepId: string,
  prerequisite: string,
): Promise<{ progress: string; command: string } | undefined> {
  const [owner, id] = prerequisite.split('/') as [string, string];
  const background = prerequisites?.background.get(prerequisite);
  if (background) {
    if (background.state === 'finished') return undefined;
    return { progress: `background migration ${background.state}, ${background.progress}`, command: `outageless background finish ${prerequisite}` };
  }
  if (prerequisites?.owedPost.some((owed) => owed.component === owner && owed.step === id)) {
    return { progress: 'an owed post step, not run yet', command: 'outageless upgrade --phase post' };
  }
  if (prerequisites?.owedManual?.has(prerequisite)) {
    return { progress: 'an owed manual action, not run yet', command: `outageless manual run ${prerequisite}` };
  }
  if (appliedSteps.get(owner)?.has(id)) return undefined;

  const file = item.code!.versionFile.replace(/version\.ts$/, 'db/upgrade.ts');
  const component = code.components.get(owner);
  if (!component) throw errors.unknownPrerequisite(file, item.component, stepId, prerequisite, `no component ${owner} is on disk`);
  const definition = (await loadUpgrade(code, component)).steps.find((step) => step.id === id);
  if (!definition) throw errors.unknownPrerequisite(file, item.component, stepId, prerequisite, `${owner}'s db/upgrade.ts has no step with id "${id}"`);
  const row = installed?.get(owner);
  if (row && row.version >= definition.version && !pending.some((p) => p.component === owner && p.steps.some((s) => s.id === id))) return undefined;
  return {
    progress: `not done yet: it is part of this upgrade (${definition.phase === 'background' ? 'queued by it, worked after it' : definition.phase === 'manual' ? 'owed by it, run by an operator after it' : 'run by it'}); a gate needs it finished before the gated release is deployed`,
    command: definition.phase === 'background'
      ? `deploy the release before this one, then outageless background finish ${prerequisite}`
      : definition.phase === 'manual'
        ? `deploy the release before this one and upgrade to it, then outageless manual run ${prerequisite}`
        : 'deploy the release before this one and upgrade to it first',
  };
}
