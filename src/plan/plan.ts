import { join } from 'node:path';
import { isBackgroundStep, isManualStep, type AnyUpgradeStep, type CachePurge, type Maturity, type OutageClass, type StepPhase } from '../component/definitions.ts';
import { changedDefinitionFiles } from '../component/definitions-hash.ts';
import type { Component, SiteCode } from '../component/discover.ts';
import { loadUpgrade } from '../component/files.ts';
import { loadFormats } from '../migrations/formats.ts';
import { errors, isOutagelessError } from '../errors.ts';
import { loadTimeoutMs, withTimeLimit } from '../component/load.ts';
import { validateMetadata } from '../component/manifest.ts';
import type { InstalledComponent } from '../state/installed.ts';
import type { SchemaShape } from '../schema/online-safety.ts';
import { upgradeOrder } from './order.ts';
import { findGates } from './gates.ts';
import { verifyStep, type StepFinding } from './verify-step.ts';
import { validateChangedFiles } from './changed-files.ts';

/**
 * The plan: installed state compared with the code on disk, per component, with an outage
 * class and the reasons for it (DESIGN §4.1). Building it never writes anything.
 */

/** `behind`: the code is older than the database (an old front); only reported by front views. */
export type PlanAction = 'install' | 'upgrade' | 'unchanged' | 'behind' | 'missing-from-disk';

export interface PlannedStep {
  readonly id: string;
  readonly version: number;
  readonly description: string | undefined;
  /**
   * The verified class: the declared one, raised when the step's dry run shows that
   * `none` would break or block the code still serving (see `findings`).
   */
  readonly outage: OutageClass;
  /** The declared outage, or `site` when the step declares none. */
  readonly declaredOutage: OutageClass;
  readonly declared: boolean;
  /** What the verification found; empty for steps not declared `none`. */
  readonly findings: readonly StepFinding[];
  /**
   * `background`: a batched migration the run queues, worked after the upgrade.
   * `manual`: an action the run records as owed, run later by `outageless manual run`.
   */
  readonly phase: StepPhase | 'background' | 'manual';
  readonly transaction: boolean;
  /** Applied before under another version (or, for `pre`, by `upgrade --phase pre`): skipped and logged. */
  readonly alreadyApplied: boolean;
  /** Prerequisites (`<component>/<id>`) that must be finished first. */
  readonly after: readonly string[];
  readonly step: AnyUpgradeStep;
}

/** A prerequisite of a pending step (`after:`) that is not finished: the plan is refused. */
export interface UnfinishedGate {
  readonly component: string;
  readonly step: string;
  readonly prerequisite: string;
  /** `running, 42% (4,200 of 10,000 keys)`, `owed post step`, … */
  readonly progress: string;
  /** What finishes it. */
  readonly command: string;
}

/** A post step whose component's main steps are done: it runs once no old front holds it back. */
export interface OwedPostStep {
  readonly component: string;
  readonly step: string;
  readonly version: number;
  readonly since: Date;
}

/** What the site database says about prerequisites: background migrations and owed post steps. */
export interface PrerequisiteStates {
  /** Keyed `<component>/<id>`. */
  readonly background: ReadonlyMap<string, { readonly state: string; readonly progress: string }>;
  readonly owedPost: readonly OwedPostStep[];
  /** Owed manual actions, keyed `<component>/<id>`: a gate on one points at `manual run`. */
  readonly owedManual?: ReadonlySet<string>;
}

export interface PlanItem {
  readonly component: string;
  readonly action: PlanAction;
  readonly installedVersion: number | undefined;
  readonly codeVersion: number | undefined;
  readonly release: string | undefined;
  readonly codeIncrement: string | undefined;
  readonly maturity: Maturity;
  readonly outage: OutageClass;
  readonly reasons: readonly string[];
  readonly steps: readonly PlannedStep[];
  /** Files in `db/` that differ from what was installed. */
  readonly changedFiles: readonly string[];
  readonly purgeCaches: CachePurge;
  /** For class `component`: the component that pauses (a subplugin pauses with its parent). */
  readonly pauses: string | undefined;
  /** Present for components on disk; absent for `missing-from-disk`. */
  readonly code: Component | undefined;
}

export type CachePurgePlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'all' }
  | { readonly kind: 'own'; readonly components: readonly string[] };

export interface Plan {
  readonly siteInstalled: boolean;
  /** Every component, in upgrade order; components missing from disk last. */
  readonly items: readonly PlanItem[];
  /** The items that install or upgrade something. */
  readonly pending: readonly PlanItem[];
  readonly outage: OutageClass;
  /** True when the plan needs whole-site maintenance (class `site` somewhere). */
  readonly maintenanceRequired: boolean;
  /** Why maintenance is required (empty when it is not). */
  readonly maintenanceReasons: readonly string[];
  /** Components a staged (`--no-maintenance`) upgrade pauses one at a time, in order. */
  readonly pauses: readonly string[];
  readonly purgeCaches: CachePurgePlan;
  /** Pending steps gated on unfinished work: running the plan is refused while any is listed. */
  readonly gates: readonly UnfinishedGate[];
  /** Post steps owed from earlier upgrades (`upgrade --phase post` runs them). */
  readonly owedPost: readonly OwedPostStep[];
}

export interface PlanInput {
  readonly code: SiteCode;
  /** Undefined when the site is not installed. */
  readonly installed: ReadonlyMap<string, InstalledComponent> | undefined;
  readonly appliedSteps: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The live schema, which the installed release reads: steps declared `none` are verified
   * against it. Without it, renames and drops are judged as breaking whatever they touch.
   */
  readonly liveSchema?: SchemaShape;
  /**
   * Reads the live schema of just the named tables, when `liveSchema` is not given: the plan
   * names the tables its steps declared `none` touch (none at all when no such step is
   * pending, and then it reads nothing). Verification looks up no other table, so the
   * answer is the one the whole schema gives.
   */
  readonly readLiveSchema?: (tables: readonly string[]) => Promise<SchemaShape>;
  /** Background migrations and owed post steps, for the finalization gates. */
  readonly prerequisites?: PrerequisiteStates;
  /**
   * `throw` (the upgrader): code older than the database is a downgrade error.
   * `report` (a front during a rollout): such components get action `behind`.
   */
  readonly olderCode?: 'throw' | 'report';
}

const RANK: Record<OutageClass, number> = { none: 0, component: 1, site: 2 };

/** The stronger of two outage classes. */
export function strongest(a: OutageClass, b: OutageClass): OutageClass {
  return RANK[a] >= RANK[b] ? a : b;
}

const PURGE_RANK: Record<CachePurge, number> = { none: 0, own: 1, all: 2 };

/**
 * Compares installed state with the code on disk.
 *
 * @example
 * ```ts
 * const plan = await buildPlan({ code, installed, appliedSteps })
 * if (plan.maintenanceRequired) console.log(plan.maintenanceReasons.join('\n'))
 * ```
 */
export async function buildPlan(planInput: PlanInput): Promise<Plan> {
  let input = planInput;
  const { code, installed } = input;
  const ordered = upgradeOrder(code);

  // Downgrades are checked before anything else: nothing may run against them.
  for (const component of ordered) {
    const row = installed?.get(component.name);
    if (input.olderCode !== 'report' && row && component.manifest.version < row.version) {
      throw errors.downgrade(component.name, row.version, component.manifest.version, component.versionFile);
    }
  }

  // The db/upgrade.ts files the plan will read are all loaded at once: each load waits on the
  // disk and on the import check's worker, and one after another they were most of the time
  // `--is-pending` took on a large site. The loop still awaits them in upgrade order, so the
  // error reported is the first in that order, as before.
  for (const component of ordered) {
    if (readsUpgradeFile(input, component)) loadUpgrade(input.code, component).catch(() => undefined);
  }
  if (input.liveSchema === undefined && input.readLiveSchema) input = { ...input, liveSchema: await input.readLiveSchema(await verifiedTables(input, ordered)) };
  const items: PlanItem[] = [];
  for (const component of ordered) items.push(await planComponent(input, component));
  for (const row of installed?.values() ?? []) {
    if (!code.components.has(row.component)) items.push(missingItem(row));
  }

  const pending = items.filter((item) => item.action === 'install' || item.action === 'upgrade');
  const outage = pending.reduce<OutageClass>((acc, item) => strongest(acc, item.outage), 'none');
  const maintenanceReasons = pending.filter((item) => item.outage === 'site').flatMap((item) => item.reasons.map((reason) => `${item.component}: ${reason}`));
  if (!installed) maintenanceReasons.unshift('site: not installed yet: a fresh install runs in maintenance mode');
  return {
    siteInstalled: installed !== undefined,
    items,
    pending,
    outage: installed ? outage : 'site',
    maintenanceRequired: !installed || outage === 'site',
    maintenanceReasons,
    pauses: [...new Set(pending.flatMap((item) => (item.outage === 'component' && item.pauses ? [item.pauses] : [])))],
    purgeCaches: unionPurges(pending),
    gates: await findGates(code, installed, input.appliedSteps, pending, input.prerequisites),
    owedPost: input.prerequisites?.owedPost ?? [],
  };
}

function unionPurges(pending: readonly PlanItem[]): CachePurgePlan {
  const strongestPurge = pending.reduce<CachePurge>((acc, item) => (PURGE_RANK[item.purgeCaches] > PURGE_RANK[acc] ? item.purgeCaches : acc), 'none');
  if (strongestPurge === 'none') return { kind: 'none' };
  if (strongestPurge === 'all') return { kind: 'all' };
  return { kind: 'own', components: pending.filter((item) => item.purgeCaches === 'own').map((item) => item.component) };
}

function missingItem(row: InstalledComponent): PlanItem {
  return {
    component: row.component,
    action: 'missing-from-disk',
    installedVersion: row.version,
    codeVersion: undefined,
    release: row.release ?? undefined,
    codeIncrement: row.codeIncrement ?? undefined,
    maturity: 'stable',
    outage: 'none',
    reasons: [`installed at ${row.version} but missing from disk: its tables and data are kept; restore its code, or drop them with \`outageless uninstall ${row.component}\``],
    steps: [],
    changedFiles: [],
    purgeCaches: 'none',
    pauses: undefined,
    code: undefined,
  };
}

/**
 * The tables the verification of the pending steps declared `none` will look up (the same
 * steps {@link planComponent} verifies). A db/upgrade.ts that fails to load names none here:
 * the plan reports its error, in upgrade order, before any verification.
 */
async function verifiedTables(input: PlanInput, ordered: readonly Component[]): Promise<string[]> {
  const tables = new Set<string>();
  for (const component of ordered) {
    if (!readsUpgradeFile(input, component)) continue;
    const row = input.installed!.get(component.name)!;
    const upgrade = await loadUpgrade(input.code, component).catch(() => undefined);
    const applied = input.appliedSteps.get(component.name);
    for (const step of upgrade?.steps ?? []) {
      if (step.version <= row.version || isBackgroundStep(step) || isManualStep(step) || (step.outage ?? 'site') !== 'none' || applied?.has(step.id)) continue;
      for (const call of verifyStep(step, undefined).calls) {
        if (call.kind === 'renameTable') tables.add(call.from).add(call.to);
        else tables.add(call.table);
      }
    }
  }
  return [...tables].sort();
}

/** Whether {@link planComponent} will load the component's db/upgrade.ts: a version bump with db/ changed. */
function readsUpgradeFile(input: PlanInput, component: Component): boolean {
  const row = input.installed?.get(component.name);
  return row !== undefined && component.manifest.version > row.version && changedDefinitionFiles(row.definitions, component.definitions.files).length > 0;
}

async function planComponent(input: PlanInput, component: Component): Promise<PlanItem> {
  const { manifest } = component;
  const row = input.installed?.get(component.name);
  const base = {
    component: component.name,
    installedVersion: row?.version,
    codeVersion: manifest.version,
    release: manifest.release,
    codeIncrement: manifest.codeIncrement,
    maturity: manifest.maturity ?? 'stable',
    pauses: undefined,
    code: component,
  };

  if (!row) {
    return {
      ...base,
      action: 'install',
      outage: 'none',
      reasons: [input.installed ? 'new component: install is additive' : 'fresh install'],
      steps: [],
      changedFiles: Object.keys(component.definitions.files),
      purgeCaches: 'all',
    };
  }

  const changedFiles = changedDefinitionFiles(row.definitions, component.definitions.files);
  if (manifest.version < row.version) {
    return { ...base, action: 'behind', outage: 'none', reasons: [`code ${manifest.version} is older than the installed ${row.version}`], steps: [], changedFiles, purgeCaches: 'none' };
  }
  if (manifest.version === row.version) {
    const reasons: string[] = [];
    if (changedFiles.length > 0) {
      // Not pending, but checked now: a bad file must not wait for the bump to be reported.
      await validateChangedFiles(input.code, component, changedFiles);
      reasons.push(`db/ changed (${changedFiles.map((f) => `db/${f}`).join(', ')}) without a version bump: not pending until ${component.versionFile} raises version`);
    }
    if ((manifest.codeIncrement ?? null) !== row.codeIncrement) {
      reasons.push(`code increment ${row.codeIncrement ?? '(none)'} -> ${manifest.codeIncrement ?? '(none)'}: code-only, not an upgrade`);
    }
    return { ...base, action: 'unchanged', outage: 'none', reasons, steps: [], changedFiles, purgeCaches: 'none' };
  }

  if (changedFiles.length === 0) {
    return {
      ...base,
      action: 'upgrade',
      outage: 'none',
      reasons: [`code-only change: db/ unchanged since ${row.version}`],
      steps: [],
      changedFiles,
      purgeCaches: 'all',
    };
  }

  const upgrade = await loadUpgrade(input.code, component);
  const applied = input.appliedSteps.get(component.name) ?? new Set<string>();
  const steps: PlannedStep[] = [];
  for (const step of upgrade.steps.filter((candidate) => candidate.version > row.version)) {
    const alreadyApplied = applied.has(step.id);
    const after = step.after ?? [];
    if (isBackgroundStep(step)) {
      // Batched, each batch its own short transaction, after the upgrade: safe while serving.
      steps.push({ id: step.id, version: step.version, description: step.description, outage: 'none', declaredOutage: 'none', declared: true, findings: [], phase: 'background', transaction: false, alreadyApplied, after, step });
      continue;
    }
    if (isManualStep(step)) {
      // Never run by the upgrade: recorded as owed, outside the window, so it adds no class.
      steps.push({ id: step.id, version: step.version, description: step.description, outage: 'none', declaredOutage: 'none', declared: true, findings: [], phase: 'manual', transaction: true, alreadyApplied, after: [], step });
      continue;
    }
    const declaredOutage = step.outage ?? 'site';
    const phase = step.phase ?? 'main';
    // Only `none` is a claim worth checking: a stronger class already pauses what it breaks.
    // A post step runs once no old front is left, so breaking the old code is its purpose;
    // what it blocks still counts.
    const findings = (declaredOutage === 'none' && !alreadyApplied ? verifyStep(step, input.liveSchema).findings : []).filter(
      (finding) => phase !== 'post' || finding.kind !== 'breaking',
    );
    const raised = findings.some((finding) => finding.kind !== 'unverified');
    steps.push({
      id: step.id,
      version: step.version,
      description: step.description,
      outage: raised ? 'component' : declaredOutage,
      declaredOutage,
      declared: step.outage !== undefined,
      findings,
      phase,
      transaction: step.transaction ?? true,
      alreadyApplied,
      after,
      step,
    });
  }

  let outage: OutageClass = 'none';
  const reasons: string[] = [];
  let vouched = false;
  for (const step of steps) {
    if (step.alreadyApplied) {
      // It speaks for the change (it is the same fix) and runs nothing, so it adds no outage.
      vouched = true;
      reasons.push(`step ${step.id} (${step.version}) was already applied under another version: skipped`);
      continue;
    }
    vouched = true;
    if (step.phase === 'background') {
      reasons.push(`background migration ${step.id} (${step.version}) is queued when its version is reached and worked after the upgrade, in batches`);
      continue;
    }
    if (step.phase === 'manual') {
      reasons.push(`manual action ${step.id} (${step.version}) becomes owed, not run: \`outageless manual run ${component.name}/${step.id}\` runs it when an operator chooses`);
      continue;
    }
    if (step.phase === 'post') {
      // Not part of this window: it runs once no live front runs the old code.
      reasons.push(`post step ${step.id} (${step.version}) runs once no live front runs ${component.name} below ${step.version}`);
      continue;
    }
    outage = strongest(outage, step.outage);
    reasons.push(step.declared
      ? `step ${step.id} (${step.version}) declares outage ${step.declaredOutage}`
      : `step ${step.id} (${step.version}) declares no outage: assumed site`);
    for (const finding of step.findings) {
      reasons.push(finding.kind === 'unverified'
        ? `step ${step.id}: not verified: ${finding.reason}`
        : `step ${step.id} is raised to ${step.outage}: ${finding.reason}. Safe alternative: ${finding.alternative}`);
    }
  }

  let purgeCaches: CachePurge = 'all';
  if (upgrade.metadata) {
    // Plugin code runs here, while the plan is built: its result is checked like the
    // definitions, and a hook that throws or never returns is a coded error naming the file.
    const file = join(component.versionFile, '..', 'db', 'upgrade.ts');
    const limit = loadTimeoutMs();
    const hook = upgrade.metadata;
    const result = await withTimeLimit(
      (async () => hook(row.version))(),
      limit,
      () => errors.metadataTimeout(file, component.name, limit),
    ).catch((error: unknown) => {
      throw isOutagelessError(error, errors.metadataTimeout.code) ? error : errors.metadataFailed(file, component.name, error);
    });
    const metadata = validateMetadata(file, component.name, result);
    if (metadata.maintenance) {
      vouched = true;
      outage = strongest(outage, metadata.maintenance);
      reasons.push(`metadata(${row.version}) asks for maintenance ${metadata.maintenance}`);
    }
    if (metadata.purgeCaches) {
      purgeCaches = metadata.purgeCaches;
      reasons.push(`metadata(${row.version}) asks for cache purge ${metadata.purgeCaches}`);
    }
  }

  if (changedFiles.includes('formats.ts')) {
    // Bad input in db/formats.ts is a coded error of the plan, before anything runs.
    await loadFormats(input.code, component);
    if (!vouched && changedFiles.every((file) => file === 'formats.ts')) {
      // Vouched for by the format rules (assertFormatRules, before anything runs): a raised
      // write is class none, a raised read is refused until data and fronts are at it, and a
      // lowered version is refused.
      vouched = true;
      reasons.push('db/formats.ts changed: vouched for by the format rules (a raised write is class none; a raised read needs 100% coverage and no live front writing below it)');
    }
  }
  if (!vouched) {
    outage = 'site';
    reasons.push(`${changedFiles.map((f) => `db/${f}`).join(', ')} changed and no pending step or metadata hook vouches for it: assumed site`);
  }
  if (outage === 'component' && component.name === 'core') {
    outage = 'site';
    reasons.push('core cannot pause on its own: component class means site maintenance for core');
  }
  let pauses: string | undefined;
  if (outage === 'component') {
    // A subplugin pauses with its parent: they share routes, callbacks and events.
    const unit = component.parent ? input.code.components.get(component.parent)! : component;
    if (unit.manifest.maintenance?.disableable) {
      pauses = unit.name;
      reasons.push(`component class: ${unit.name} pauses while it upgrades; the rest of the site keeps serving`);
    } else {
      outage = 'site';
      reasons.push(`needs component maintenance, but ${unit.name} does not declare maintenance: { disableable: true } in ${unit.versionFile}: the whole site pauses`);
    }
  }
  return { ...base, action: 'upgrade', outage, reasons, steps, changedFiles, purgeCaches, pauses };
}
