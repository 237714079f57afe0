import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { StepContext } from '../component/definitions.ts';
import type { SiteCode } from '../component/discover.ts';
import { loadInstall, loadSchema, loadUpgrade } from '../component/files.ts';
import { preloadSite } from '../component/preload.ts';
import { notifyStateChanged, type SiteDatabase } from '../database/open.ts';
import type { HeldUpgradeLock, UpgradeLockHolder, UpgradeMode } from '../database/upgrade-lock.ts';
import { errors, isOutagelessError, OutagelessError } from '../errors.ts';
import type { CachePurgePlan, Plan, PlanItem, PlannedStep } from '../plan/plan.ts';
import { readPlan } from '../plan/read.ts';
import { installSchema } from '../schema/ddl.ts';
import { createSchemaHelpers } from '../schema/postgres-helpers.ts';
import { schemaErrors } from '../schema/errors.ts';
import { readSchemaShape, type SchemaShape } from '../schema/online-safety.ts';
import {
  backoffMs,
  createLockWaitBudget,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_LOCK_WAIT_MS,
  findBlockers,
  isLockTimeout,
  readLockTimeout,
  setLockTimeout,
  type LockWaitBudget,
} from '../schema/lock-safety.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { onlineSqlGuard } from './online-guard.ts';
import { queueBackgroundMigration } from '../migrations/store.ts';
import { assertFormatRules, recordInstalledFormats } from '../migrations/formats.ts';
import { clearOwedStep, recordOwedSteps } from '../state/owed-steps.ts';
import { clearOwedManual, recordOwedManual } from '../migrations/manual.ts';
import { purgePlannedCaches } from '../caches/purge.ts';
import { appendLog, readInstalled, writeInstalled, writeSavepoint } from '../state/installed.ts';
import { recordComponentSchema, recordMissingComponentSchemas } from '../state/component-schema.ts';
import { ensureStateTables, isStateTable } from '../state/tables.ts';
import { readComponentStates, reclaimStalePauses, setComponentState } from '../state/component-state.ts';
import { startRunRecorder, type RecordedMode, type RunOutcome, type RunRecorder } from './run-record.ts';

/** Progress of a run, for the CLI's output and the admin page's live view. */
export type UpgradeEvent =
  | { readonly kind: 'waiting-for-lock'; readonly holder: UpgradeLockHolder | undefined }
  | { readonly kind: 'lock-acquired'; readonly holder: UpgradeLockHolder; readonly runId: string }
  | { readonly kind: 'component-started'; readonly component: string; readonly action: 'install' | 'upgrade'; readonly from: number | undefined; readonly to: number }
  | { readonly kind: 'step-applied'; readonly component: string; readonly step: string; readonly version: number; readonly durationMs: number }
  | { readonly kind: 'step-skipped'; readonly component: string; readonly step: string; readonly version: number }
  | { readonly kind: 'ddl-retry'; readonly component: string; readonly what: string; readonly attempt: number; readonly delayMs: number }
  | { readonly kind: 'component-finished'; readonly component: string; readonly version: number; readonly durationMs: number }
  | { readonly kind: 'component-paused'; readonly component: string }
  | { readonly kind: 'component-resumed'; readonly component: string; readonly pausedMs: number; readonly state: 'normal' | 'post-install' }
  | { readonly kind: 'log'; readonly component: string; readonly message: string };

export interface UpgradeOptions {
  readonly database: SiteDatabase;
  readonly code: SiteCode;
  /** `maintenance` (the default) puts the site in maintenance while it runs; `online` refuses plans that need it. */
  readonly mode?: UpgradeMode;
  /** Seconds to wait for another upgrader to finish; 0 fails at once. */
  readonly waitSeconds?: number;
  readonly allowUnstable?: boolean;
  /** Asked once, with the plan, before anything is written; false cancels. */
  readonly confirm?: (plan: Plan) => Promise<boolean>;
  readonly onEvent?: (event: UpgradeEvent) => void;
  /**
   * Who starts the run, for its row in outageless_upgrade_run (`outageless history`, the
   * admin banner): `cli`, `web`, … (default `api`).
   */
  readonly startedBy?: string;
  /** Where a failure to record progress in the database is reported (default: stderr); the run goes on. */
  readonly onRecordWarning?: (message: string) => void;
  /** `lock_timeout` of each DDL attempt (default 200 ms): the longest traffic may queue behind one. */
  readonly lockTimeoutMs?: number;
  /** Total lock wait of one step over all its retries (default 60 s); past it the step fails cleanly. */
  readonly lockWaitMs?: number;
  /**
   * Called right after a component is paused, before its steps run: waits for its events
   * already being processed (the jobs runtime provides it).
   */
  readonly drainComponent?: (component: string) => Promise<void>;
  /**
   * `all` (the default): pending `pre` steps first (with fronts serving, also in maintenance
   * mode), then the `main` steps, then the owed `post` steps no live front holds back.
   * `pre`: only the pending pre steps. `post`: only the owed post steps.
   */
  readonly phase?: UpgradePhase;
  /** The live fronts and the component versions they run; post steps wait for old ones. */
  readonly liveFronts?: () => Promise<readonly LiveFront[]>;
}

export type UpgradePhase = 'all' | 'pre' | 'post';

/** A live front as the post phase judges it (the front registry provides them). */
export interface LiveFront {
  readonly host: string;
  readonly pid: number;
  readonly url: string | null;
  readonly components: Readonly<Record<string, { readonly version: number }>>;
}

/** A post step that stays owed, and why. */
export interface HeldBackPostStep {
  readonly component: string;
  readonly step: string;
  readonly version: number;
  /** The fronts that still run the component below the step's version. */
  readonly fronts: readonly LiveFront[];
  readonly reason: string;
}

/** How long a component was paused during a staged upgrade. */
export interface ComponentPause {
  readonly component: string;
  readonly pausedMs: number;
  /** `post-install` when an operator had paused it: they return it to normal themselves. */
  readonly leftIn: 'normal' | 'post-install';
}

export type UpgradeResult =
  | { readonly kind: 'nothing-to-do'; readonly plan: Plan }
  | {
      readonly kind: 'upgraded';
      readonly plan: Plan;
      readonly runId: string;
      readonly mode: UpgradeMode;
      readonly durationMs: number;
      /** What to purge; already done when `purged` is true (maintenance mode). */
      readonly purgeCaches: CachePurgePlan;
      readonly purged: boolean;
      /** Components paused one at a time (staged upgrade), with their pause durations. */
      readonly pauses: readonly ComponentPause[];
      readonly phase: UpgradePhase;
      /** Time spent on `pre` steps, with fronts serving (before any maintenance). */
      readonly preDurationMs: number;
      /** Time spent on `main` steps: in maintenance mode, the maintenance window. */
      readonly mainDurationMs: number;
      /** Post steps this run applied, and those left owed with the fronts that hold them. */
      readonly postApplied: readonly { readonly component: string; readonly step: string }[];
      readonly postHeldBack: readonly HeldBackPostStep[];
    };

/**
 * Installs or upgrades a site: plan, validate, confirm, take the upgrade lock, re-plan
 * under it, then run each component in order with a savepoint per step (DESIGN §4.3).
 *
 * @example
 * ```ts
 * const code = await discoverSite('/srv/lms')
 * const result = await runUpgrade({ database, code, mode: 'online' })
 * if (result.kind === 'upgraded' && !result.purged) console.log(result.purgeCaches)
 * ```
 */
export async function runUpgrade(options: UpgradeOptions): Promise<UpgradeResult> {
  const { database, code } = options;
  const mode = options.mode ?? 'maintenance';
  const phase = options.phase ?? 'all';
  // Every event goes to the caller and, once the run holds the lock, to the database, where
  // fronts of any process read it (run-record.ts).
  let recorder: RunRecorder | undefined;
  const emit = (event: UpgradeEvent) => {
    options.onEvent?.(event);
    recorder?.record(event);
  };

  // Everything that can be wrong with the input is found here, before the first write.
  const { plan: preview } = await readPlan(database.db, { code });
  const nothingToDo = (plan: Plan) =>
    phase === 'pre' ? pendingPreSteps(plan).length === 0 : phase === 'post' ? plan.owedPost.length === 0 : plan.pending.length === 0 && plan.owedPost.length === 0;
  if (nothingToDo(preview)) {
    // A run killed during its last commit leaves nothing pending, but may leave its pauses.
    await reclaimStalePauses(database.db, database.upgradeLock);
    // A site installed by an older outageless gains the table records `uninstall` needs.
    await recordMissingComponentSchemas(database.db, code, await readInstalled(database.db));
    return { kind: 'nothing-to-do', plan: preview };
  }
  assertRunnable(preview, mode, phase, options.allowUnstable ?? false);
  if (phase !== 'post') await assertFormatRules(database.db, code, preview);
  await preloadDefinitions(database.db, code, preview);
  if (options.confirm && !(await options.confirm(preview))) throw errors.notConfirmed();

  // Pre steps run while every front serves, so a maintenance-mode run starts online and
  // turns maintenance on only for its main steps: the window holds nothing else.
  // Likewise a run of owed post steps only (`--phase post`, or nothing else pending): most are
  // class `none` or held back by old fronts, so it starts online and turns maintenance on only
  // for a post step that declares more (the CLI tells operators to run `upgrade --phase post`
  // without --no-maintenance, and that must not take the site down for nothing).
  const postOnly = phase === 'post' || (phase === 'all' && preview.pending.length === 0);
  const lockMode: UpgradeMode = phase === 'pre' || postOnly || (phase === 'all' && pendingPreSteps(preview).length > 0) ? 'online' : mode;
  let held = await database.upgradeLock.tryAcquire(lockMode);
  if (!held && (options.waitSeconds ?? 0) > 0) {
    emit({ kind: 'waiting-for-lock', holder: await database.upgradeLock.holder() });
    held = await database.upgradeLock.tryAcquire(lockMode, options.waitSeconds);
  }
  if (!held) {
    const holder = await database.upgradeLock.holder();
    // The holder finished between our attempt and the lookup: the lock is free, try once more.
    if (!holder) held = await database.upgradeLock.tryAcquire(lockMode);
    if (!held) throw errors.upgradeLocked(holder);
  }

  const started = performance.now();
  let outcome: RunOutcome = 'succeeded';
  let failure: unknown;
  try {
    recorder = await recordRun(database, held, options, mode === 'online' && phase === 'all' && preview.pauses.length > 0 ? 'staged' : phase === 'pre' ? 'online' : mode, phase);
    emit({ kind: 'lock-acquired', holder: held.holder, runId: held.runId });
    await notifyStateChanged(database.db, 'upgrade-started');
    // Another upgrader may have finished while we waited: the plan under the lock is the truth.
    let { plan } = await readPlan(database.db, { code });
    if (nothingToDo(plan)) {
      outcome = 'nothing';
      await reclaimStalePauses(database.db, database.upgradeLock);
      return { kind: 'nothing-to-do', plan };
    }
    assertRunnable(plan, mode, phase, options.allowUnstable ?? false);
    await preloadDefinitions(database.db, code, plan);

    const runId = held.runId;
    await ensureStateTables(database.db);
    await recordMissingComponentSchemas(database.db, code, await readInstalled(database.db));
    // Pauses of a run that died are ours now: a component it left half-upgraded stays paused
    // until this run has finished with it, and is returned to normal at the end either way.
    await reclaimStalePauses(database.db, database.upgradeLock, runId);
    // What the installed release reads: online steps refuse to break it (DESIGN §4.7).
    const oldSchema = await readSchemaShape(database.db, isStateTable);
    const locks = { timeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS, waitMs: options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS };
    const run: RunContext = { db: database.db, code, lock: held, runId, emit, locks, mode, oldSchema };

    let preDurationMs = 0;
    // Zero when there were none, so the output reports a pre phase only when one ran.
    const preSteps = phase === 'post' ? [] : pendingPreSteps(plan);
    if (preSteps.length > 0) {
      const preStarted = performance.now();
      for (const { item, step } of preSteps) await runStep({ ...run, mode: 'online' }, item, step, undefined);
      preDurationMs = performance.now() - preStarted;
    }
    if (phase === 'pre') {
      return { kind: 'upgraded', plan, runId, mode: 'online', durationMs: performance.now() - started, purgeCaches: { kind: 'none' }, purged: false, pauses: [], phase, preDurationMs, mainDurationMs: 0, postApplied: [], postHeldBack: [] };
    }

    let pauses: ComponentPause[] = [];
    let mainDurationMs = 0;
    let purged = false;
    if (phase === 'all' && plan.pending.length > 0) {
      if (held.holder.mode !== mode) {
        await held.setMode(mode);
        await notifyStateChanged(database.db, 'upgrade-started');
      }
      // The pre steps are applied now: they are skipped (and logged) in their place.
      if (preDurationMs > 0) plan = (await readPlan(database.db, { code })).plan;
      const mainStarted = performance.now();
      pauses = await runComponents(run, plan, mode, options.drainComponent);
      purged = mode === 'maintenance' && plan.purgeCaches.kind !== 'none';
      // `all` moves the global revision, `own` only the listed components' (the metadata hooks' union).
      if (purged) await purgePlannedCaches(database.db, plan.purgeCaches);
      mainDurationMs = performance.now() - mainStarted;
    }

    const { postApplied, postHeldBack } = await runOwedPostSteps(run, options.liveFronts);
    return { kind: 'upgraded', plan, runId, mode, durationMs: performance.now() - started, purgeCaches: plan.purgeCaches, purged, pauses, phase, preDurationMs, mainDurationMs, postApplied, postHeldBack };
  } catch (error) {
    outcome = 'failed';
    failure = error;
    throw error;
  } finally {
    // Before the lock is released: a front that sees the lock free finds the run ended.
    await recorder?.finish({ outcome, durationMs: performance.now() - started, ...(outcome === 'failed' ? { error: failure } : {}) });
    await held.release();
    await notifyStateChanged(database.db, 'upgrade-finished').catch(() => {});
  }
}

/**
 * Starts the run's row and progress lines, on a connection of their own (see
 * SiteDatabase.autocommit). The state tables are made first (a fresh install has none yet);
 * whatever fails here is reported and the run goes on unrecorded.
 */
async function recordRun(database: SiteDatabase, held: HeldUpgradeLock, options: UpgradeOptions, mode: RecordedMode, phase: UpgradePhase): Promise<RunRecorder> {
  const warn = options.onRecordWarning ?? ((message: string) => void process.stderr.write(`${message}\n`));
  await ensureStateTables(database.db).catch((error: unknown) => warn(`outageless: could not create the upgrade history tables: ${error instanceof Error ? error.message : String(error)}; the upgrade goes on`));
  return startRunRecorder(database.autocommit, { runId: held.runId, mode, phase, startedBy: options.startedBy ?? 'api', host: held.holder.host, pid: held.holder.pid }, warn);
}

/** Pending `pre` steps not applied yet, in upgrade order. */
export function pendingPreSteps(plan: Plan): { readonly item: PlanItem; readonly step: PlannedStep }[] {
  return plan.pending.flatMap((item) => (item.action === 'upgrade' ? item.steps.filter((step) => step.phase === 'pre' && !step.alreadyApplied).map((step) => ({ item, step })) : []));
}

/**
 * Runs the owed post steps that no live front holds back: a front still running the
 * component below a post step's version would break on it (that is what post steps are for).
 * In an online run a post step that declares more than `none` waits for a maintenance run.
 */
async function runOwedPostSteps(run: RunContext, liveFronts: (() => Promise<readonly LiveFront[]>) | undefined) {
  const postApplied: { component: string; step: string }[] = [];
  const postHeldBack: HeldBackPostStep[] = [];
  const { plan } = await readPlan(run.db, { code: run.code });
  if (plan.owedPost.length === 0) return { postApplied, postHeldBack };
  const fronts = (await liveFronts?.()) ?? [];
  for (const owed of plan.owedPost) {
    const component = run.code.components.get(owed.component);
    const definition = component ? (await loadUpgrade(run.code, component)).steps.find((step) => step.id === owed.step) : undefined;
    if (!component || !definition || definition.phase === 'background' || definition.phase === 'manual') {
      postHeldBack.push({ ...owed, fronts: [], reason: `${owed.component}'s db/upgrade.ts no longer has post step ${owed.step}` });
      continue;
    }
    const holders = fronts.filter((front) => {
      const version = front.components[owed.component]?.version;
      return version !== undefined && version < owed.version;
    });
    if (holders.length > 0) {
      postHeldBack.push({ ...owed, fronts: holders, reason: `${holders.length} live front(s) still run ${owed.component} below ${owed.version}` });
      continue;
    }
    const outage = definition.outage ?? 'site';
    if (run.mode === 'online' && outage !== 'none') {
      postHeldBack.push({ ...owed, fronts: [], reason: `it declares outage ${outage}: run \`outageless upgrade --phase post\` without --no-maintenance` });
      continue;
    }
    // A post-only run took the lock online (see runUpgrade): maintenance starts here, for the
    // first post step that needs it.
    if (outage !== 'none' && run.lock.holder.mode !== 'maintenance') {
      await run.lock.setMode('maintenance');
      await notifyStateChanged(run.db, 'upgrade-started');
    }
    const item = plan.items.find((candidate) => candidate.component === owed.component)!;
    const planned: PlannedStep = {
      id: definition.id, version: definition.version, description: definition.description, outage, declaredOutage: outage, declared: definition.outage !== undefined,
      findings: [], phase: 'post', transaction: definition.transaction ?? true, alreadyApplied: false, after: definition.after ?? [], step: definition,
    };
    await runStep(run, { ...item, code: component }, planned, undefined);
    postApplied.push({ component: owed.component, step: owed.step });
  }
  return { postApplied, postHeldBack };
}

function assertRunnable(plan: Plan, mode: UpgradeMode, phase: UpgradePhase, allowUnstable: boolean): void {
  // A pre step runs while every front serves the old code: a raised one cannot run at all.
  for (const { item, step } of pendingPreSteps(plan)) {
    const raised = step.findings.filter((finding) => finding.kind !== 'unverified');
    if (raised.length > 0) throw errors.preStepUnsafe(item.component, step.id, raised.map((finding) => `${finding.reason}. Safe alternative: ${'alternative' in finding ? finding.alternative : ''}`));
  }
  // Finalization gates: nothing runs while a prerequisite of a step of this phase is unfinished.
  const gates = plan.gates.filter((gate) => {
    const step = plan.pending.find((item) => item.component === gate.component)?.steps.find((candidate) => candidate.id === gate.step);
    return phase === 'all' || (phase === 'pre' ? step?.phase === 'pre' : step?.phase === 'post');
  });
  if (gates.length > 0) throw errors.unfinishedPrerequisite(gates);
  if (phase === 'pre') return;
  if (mode === 'online' && phase === 'all' && plan.maintenanceRequired) throw errors.maintenanceRequired(plan.maintenanceReasons);
  const unstable = plan.pending.filter((item) => item.maturity !== 'stable');
  if (unstable.length > 0 && !allowUnstable) throw errors.unstable(unstable.map((item) => ({ component: item.component, maturity: item.maturity })));
}

/**
 * Loads (and so validates) every file the run will need, a new component's db/upgrade.ts
 * included, and checks the whole site's schema, so a bad one fails before any write.
 */
async function preloadDefinitions(db: Kysely<any>, code: SiteCode, plan: Plan): Promise<void> {
  await preloadSite(db, code, plan);
}

interface StepContextOptions {
  readonly budget: LockWaitBudget;
  /** Present when the step runs online: breaking helpers refuse. */
  readonly online?: { readonly step: string; readonly oldSchema: SchemaShape };
  /** Remembers the table of the last helper lock timeout, to name its blockers. */
  readonly onLockTimeout?: (table: string | undefined) => void;
}

function stepContext(db: Kysely<any>, component: string, run: RunContext, options: StepContextOptions): StepContext {
  return {
    db,
    component,
    schema: createSchemaHelpers(db, {
      lockTimeoutMs: run.locks.timeoutMs,
      budget: options.budget,
      ...(options.online ? { online: { component, step: options.online.step, oldSchema: options.online.oldSchema } } : {}),
      onRetry: (what, attempt, delayMs) => run.emit({ kind: 'ddl-retry', component, what, attempt, delayMs }),
      ...(options.onLockTimeout ? { onLockTimeout: options.onLockTimeout } : {}),
    }),
    log: (message) => run.emit({ kind: 'log', component, message }),
  };
}

/** What every component and step of one run shares. */
interface RunContext {
  readonly db: Kysely<any>;
  readonly code: SiteCode;
  readonly lock: HeldUpgradeLock;
  readonly runId: string;
  readonly emit: (event: UpgradeEvent) => void;
  readonly locks: { readonly timeoutMs: number; readonly waitMs: number };
  readonly mode: UpgradeMode;
  readonly oldSchema: SchemaShape;
}

/**
 * Runs `attempt` until it gets past PostgreSQL's lock timeout. Each failed attempt rolled
 * back as a whole (its transaction, or its statement outside one), so no lock of it is
 * held while we back off. Past the budget, the step fails naming who blocks it.
 */
async function withLockRetries(run: RunContext, component: string, what: string, budget: LockWaitBudget, attempt: (lastTable: { value: string | undefined }) => Promise<void>): Promise<void> {
  const lastTable: { value: string | undefined } = { value: undefined };
  for (;;) {
    try {
      await attempt(lastTable);
      return;
    } catch (error) {
      if (!isLockTimeout(error) || isOutagelessError(error, schemaErrors.lockWaitExceeded.code)) throw error;
      const count = budget.recordTimeout();
      const delay = backoffMs(count);
      if (!budget.allows(delay + run.locks.timeoutMs)) {
        const blockers = await findBlockers(run.db, lastTable.value).catch(() => []);
        throw schemaErrors.lockWaitExceeded(what, lastTable.value, count, run.locks.timeoutMs, budget.totalMs, blockers);
      }
      run.emit({ kind: 'ddl-retry', component, what, attempt: count, delayMs: delay });
      await sleep(delay);
    }
  }
}

/**
 * Runs the pending components in order. In a staged (`online`) run each component of class
 * `component` is paused first (a subplugin with its parent), upgraded, passed through
 * post-install and returned; the rest of the site serves throughout. A component an operator
 * paused before the run stays theirs: after its upgrade it waits in post-install.
 *
 * If a step fails, its component stays paused: serving it against a half-upgraded schema
 * is exactly what the pause exists to prevent.
 */
async function runComponents(run: RunContext, plan: Plan, mode: UpgradeMode, drain: ((component: string) => Promise<void>) | undefined): Promise<ComponentPause[]> {
  const before = await readComponentStates(run.db);
  const unitOf = (item: PlanItem) => item.code!.parent ?? item.component;
  const paused = new Map<string, number>();
  const pauses: ComponentPause[] = [];
  for (const [index, item] of plan.pending.entries()) {
    const unit = unitOf(item);
    const operatorPaused = before.get(unit)?.pausedByRun === null;
    if (mode === 'online' && plan.pauses.includes(unit) && !paused.has(unit)) {
      paused.set(unit, performance.now());
      if (!operatorPaused) await setComponentState(run.db, unit, 'maintenance', { reason: 'staged upgrade', pausedByRun: run.runId });
      run.emit({ kind: 'component-paused', component: unit });
      await drain?.(unit);
    }
    await runComponent(run, item);
    const next = plan.pending[index + 1];
    if (next && unitOf(next) === unit) continue;
    if (operatorPaused) await setComponentState(run.db, unit, 'post-install');
    const started = paused.get(unit);
    if (started !== undefined) {
      if (!operatorPaused) {
        await setComponentState(run.db, unit, 'post-install');
        await setComponentState(run.db, unit, 'normal');
      }
      const pause: ComponentPause = { component: unit, pausedMs: performance.now() - started, leftIn: operatorPaused ? 'post-install' : 'normal' };
      pauses.push(pause);
      run.emit({ kind: 'component-resumed', component: unit, pausedMs: pause.pausedMs, state: pause.leftIn });
    }
  }
  // Pauses taken over from a dead run whose components this run did not pause again (their
  // steps were all done, or this run keeps the whole site in maintenance).
  for (const [unit, state] of before) {
    if (state.pausedByRun !== run.runId || paused.has(unit)) continue;
    await setComponentState(run.db, unit, 'normal');
    const pause: ComponentPause = { component: unit, pausedMs: Date.now() - state.since.getTime(), leftIn: 'normal' };
    pauses.push(pause);
    run.emit({ kind: 'component-resumed', component: unit, pausedMs: pause.pausedMs, state: 'normal' });
  }
  return pauses;
}

async function runComponent(run: RunContext, item: PlanItem): Promise<void> {
  const { db, code, runId, emit } = run;
  const component = item.code!;
  const target = component.manifest.version;
  const record = {
    component: component.name,
    version: target,
    release: component.manifest.release,
    codeIncrement: component.manifest.codeIncrement,
    definitionsHash: component.definitions.hash,
    definitions: component.definitions.files,
  };
  const started = performance.now();
  const startedAt = new Date();
  emit({ kind: 'component-started', component: component.name, action: item.action === 'install' ? 'install' : 'upgrade', from: item.installedVersion, to: target });

  // The component's full record commits with its last change, so a crash can never leave
  // the version at the target with the old definitions hash (a later code-only bump would
  // then look like an unvouched db/ change).
  const finish = async (trx: Kysely<any>, status: 'installed' | 'upgraded') => {
    await writeInstalled(trx, record);
    // The tables `outageless uninstall` drops once this code is gone: what db/schema.ts declares now.
    await recordComponentSchema(trx, { component: component.name, parent: component.parent ?? null, tables: Object.keys((await loadSchema(code, component)).tables) });
    await recordInstalledFormats(trx, code, component);
    await appendLog(trx, { runId, component: component.name, stepId: null, version: target, status, outage: item.action === 'install' ? 'none' : item.outage, startedAt, durationMs: performance.now() - started });
    await run.lock.verify(trx);
  };

  if (item.action === 'install') {
    const schema = await loadSchema(code, component);
    const install = await loadInstall(code, component);
    try {
      // Tables, initial data and the installed record commit together or not at all.
      await db.transaction().execute(async (trx) => {
        const unguard = await run.lock.guard(trx);
        try {
          await installSchema(trx, schema);
          await install?.run(stepContext(trx, component.name, run, { budget: createLockWaitBudget(run.locks.waitMs) }));
          await finish(trx, 'installed');
        } finally {
          unguard();
        }
      });
    } catch (error) {
      await logFailure(db, runId, component.name, null, target, startedAt, started, error);
      if (isOutagelessError(error, errors.upgradeLockLost.code)) throw error;
      if (await lockLost(run)) throw errors.upgradeLockLost();
      throw errors.installFailed(component.name, join(component.versionFile, '..', 'db', install ? 'install.ts' : 'schema.ts'), error);
    }
  } else {
    // Post steps are not part of this run's window: they become owed with the component's
    // record, in the same transaction, and run once no old front is left.
    const owed = item.steps.filter((step) => step.phase === 'post' && !step.alreadyApplied);
    const steps = item.steps.filter((step) => step.phase !== 'post');
    const finishWithOwed = async (trx: Kysely<any>) => {
      await recordOwedSteps(trx, component.name, owed);
      await finish(trx, 'upgraded');
    };
    if (steps.length === 0) await db.transaction().execute(finishWithOwed);
    for (const [index, step] of steps.entries()) await runStep(run, item, step, index === steps.length - 1 ? finishWithOwed : undefined);
  }
  emit({ kind: 'component-finished', component: component.name, version: target, durationMs: performance.now() - started });
}

async function runStep(run: RunContext, item: PlanItem, step: PlannedStep, finish: ((trx: Kysely<any>) => Promise<void>) | undefined): Promise<void> {
  const { db, runId, emit } = run;
  const component = item.component;
  const startedAt = new Date();
  const started = performance.now();
  const savepoint = async (trx: Kysely<any>, status: 'applied' | 'skipped') => {
    // Only main (and background) steps move the version: a pre step runs before the release's
    // code serves, and a post step after the version has already moved on.
    if (step.phase === 'post') await clearOwedStep(trx, component, step.id);
    else if (step.phase !== 'pre') await writeSavepoint(trx, component, step.version);
    // A step promoted from a manual action (same id, later release) settles what was owed.
    if (step.phase !== 'manual') await clearOwedManual(trx, component, step.id);
    await appendLog(trx, { runId, component, stepId: step.id, version: step.version, status, outage: step.outage, startedAt, durationMs: performance.now() - started });
    if (finish) await finish(trx);
    else await run.lock.verify(trx);
  };

  if (step.alreadyApplied) {
    await db.transaction().execute((trx) => savepoint(trx, 'skipped'));
    emit({ kind: 'step-skipped', component, step: step.id, version: step.version });
    return;
  }
  const definition = step.step;
  if (definition.phase === 'background') {
    // Queued with its savepoint: the migration exists exactly when the version says it was reached.
    await db.transaction().execute(async (trx) => {
      await queueBackgroundMigration(trx, { component, step: definition });
      await savepoint(trx, 'applied');
    });
    emit({ kind: 'log', component, message: `background migration ${step.id} queued: fronts and \`outageless worker\` work it in batches` });
    return;
  }
  if (definition.phase === 'manual') {
    // Never run by `upgrade`: owed from its savepoint on, run by `outageless manual run`. Not
    // logged as applied, so a later release's step of the same id still runs if nobody ran it.
    await db.transaction().execute(async (trx) => {
      await recordOwedManual(trx, component, definition);
      await writeSavepoint(trx, component, step.version);
      if (finish) await finish(trx);
      else await run.lock.verify(trx);
    });
    emit({ kind: 'log', component, message: `manual action ${step.id} is now owed (estimate: ${definition.estimate}): run \`outageless manual run ${component}/${step.id}\` when convenient` });
    return;
  }
  const budget = createLockWaitBudget(run.locks.waitMs);
  const what = `step ${step.id}`;
  // An online step (class `none` while the site serves) never holds a strong lock while other
  // work runs: each helper call is its own short transaction, and its raw SQL runs on one
  // connection under the short lock timeout. A step that asked for transaction: true with
  // DDL in it was already raised out of `none` by the plan.
  const online = run.mode === 'online' && step.outage === 'none' && definition.transaction !== true;
  // A post step runs once no old front is left: breaking the old code is its purpose.
  const guardOnline = step.phase === 'post' ? undefined : { step: step.id, oldSchema: run.oldSchema };
  try {
    if (online) {
      await db.connection().execute(async (connection) => {
        // Tied to the lock: if the lock's session dies, this connection is ended at once.
        const unguard = await run.lock.guard(connection);
        const previous = await readLockTimeout(connection);
        await setLockTimeout(connection, `${run.locks.timeoutMs}ms`, false);
        try {
          // Raw SQL that hits the lock timeout reruns the whole (idempotent) step.
          await withLockRetries(run, component, what, budget, async () => {
            await run.lock.verify(connection);
            const context = stepContext(connection, component, run, { budget, ...(guardOnline ? { online: guardOnline } : {}) });
            // The helpers keep the bare connection for their own DDL; the step's SQL is guarded.
            await definition.run({ ...context, db: connection.withPlugin(onlineSqlGuard(component, step.id, { allowBreaking: !guardOnline })) });
          });
        } finally {
          unguard();
          await setLockTimeout(connection, previous, false).catch(() => {});
        }
      });
      await db.transaction().execute((trx) => savepoint(trx, 'applied'));
    } else if (step.transaction) {
      // The step's changes and its savepoint commit together: a crash leaves neither. A lock
      // timeout anywhere in it (a helper or raw SQL) rolls all of it back and retries it whole.
      await withLockRetries(run, component, what, budget, (lastTable) =>
        db.transaction().execute(async (trx) => {
          const unguard = await run.lock.guard(trx);
          try {
            await setLockTimeout(trx, `${run.locks.timeoutMs}ms`, true);
            await definition.run(stepContext(trx, component, run, { budget, onLockTimeout: (table) => (lastTable.value = table) }));
            await savepoint(trx, 'applied');
          } finally {
            unguard();
          }
        }),
      );
    } else {
      // Outside a transaction a crash can leave the step half done; it must be idempotent,
      // and it is rerun because its savepoint is only written after it returns.
      // On one pinned connection, so that losing the lock can end it (see guard()).
      await db.connection().execute(async (connection) => {
        const unguard = await run.lock.guard(connection);
        try {
          await run.lock.verify(connection);
          await definition.run(stepContext(connection, component, run, { budget }));
        } finally {
          unguard();
        }
      });
      await db.transaction().execute((trx) => savepoint(trx, 'applied'));
    }
  } catch (error) {
    await logFailure(db, runId, component, step.id, step.version, startedAt, started, error);
    if (isOutagelessError(error, errors.upgradeLockLost.code)) throw error;
    // The step's connection was ended because the lock's session died: say that, not the
    // connection error it caused.
    if (await lockLost(run)) throw errors.upgradeLockLost();
    // Its own code and exit code (7), so a pipeline can tell "retry later" from a broken step.
    if (isOutagelessError(error, schemaErrors.lockWaitExceeded.code)) {
      throw new OutagelessError(error.code, error.message, {
        exitCode: error.exitCode,
        location: { component, step: step.id, file: join(item.code!.versionFile, '..', 'db', 'upgrade.ts') },
        ...(error.hint ? { hint: error.hint } : {}),
      });
    }
    throw errors.stepFailed(component, step.id, step.version, join(item.code!.versionFile, '..', 'db', 'upgrade.ts'), error, !online && step.transaction);
  }
  emit({ kind: 'step-applied', component, step: step.id, version: step.version, durationMs: performance.now() - started });
}

/** True when the run's upgrade lock is gone (its session died); false when it holds, or the database cannot tell. */
async function lockLost(run: RunContext): Promise<boolean> {
  return run.lock.verify(run.db).then(
    () => false,
    (error: unknown) => isOutagelessError(error, errors.upgradeLockLost.code),
  );
}

async function logFailure(db: Kysely<any>, runId: string, component: string, stepId: string | null, version: number, startedAt: Date, started: number, error: unknown): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  await appendLog(db, { runId, component, stepId, version, status: 'failed', outage: null, startedAt, durationMs: performance.now() - started, error: message }).catch(() => {
    // The failure itself is what the operator needs; a log write that also fails must not hide it.
  });
}
