import { hostname, userInfo } from 'node:os';
import { purgeCaches, type PurgeResult } from '../caches/purge.ts';
import type { Component, SiteCode } from '../component/discover.ts';
import type { SiteDatabase } from '../database/open.ts';
import { errors, isOutagelessError } from '../errors.ts';
import { waitForInFlightJobs } from '../jobs/in-flight.ts';
import { readComponentStates, setComponentState } from '../state/component-state.ts';
import { setSiteMaintenance, setUiUpgradeLock } from '../state/flags.ts';
import { recordOperatorAction, type OperatorActionName, type OperatorActor } from '../state/operator-log.ts';
import { stateTablesExist } from '../state/tables.ts';

/**
 * What an operator may do to a running site, and the rules each is refused under: one code
 * path for the CLI (`maintenance`, `purge-caches`, `upgrade --set/--unset-ui-upgrade-lock`)
 * and the admin console's buttons, so both refuse the same things with the same coded errors.
 * Every action, done or refused, is written to the operator log (`outageless_admin_action`).
 */
export type OperatorAction =
  | { readonly kind: 'maintenance-on'; readonly message: string | null }
  | { readonly kind: 'maintenance-off' }
  /** Pause one component; its events already being processed finish first (`drainTimeoutMs`). */
  | { readonly kind: 'pause'; readonly component: string; readonly reason: string | null; readonly drainTimeoutMs: number }
  | { readonly kind: 'resume'; readonly component: string }
  /** `component: null` purges every cache of the site. */
  | { readonly kind: 'purge-caches'; readonly component: string | null }
  | { readonly kind: 'ui-lock'; readonly locked: boolean };

/** What each kind of action answers. */
export interface OperatorResults {
  readonly 'maintenance-on': MaintenanceResult;
  readonly 'maintenance-off': MaintenanceResult;
  readonly pause: ComponentStateResult;
  readonly resume: ComponentStateResult;
  readonly 'purge-caches': { readonly kind: 'purged'; readonly purge: PurgeResult };
  readonly 'ui-lock': { readonly kind: 'ui-lock'; readonly locked: boolean };
}
interface MaintenanceResult { readonly kind: 'maintenance'; readonly enabled: boolean; readonly message: string | null }
interface ComponentStateResult { readonly kind: 'component-state'; readonly component: string; readonly state: 'maintenance' | 'normal' }

export type OperatorActionResult = OperatorResults[keyof OperatorResults];

export interface OperatorContext {
  readonly database: SiteDatabase;
  /** The site's code; read only by the actions that name a component (site maintenance works with broken code). */
  readonly loadCode: () => Promise<SiteCode>;
  readonly actor: OperatorActor;
  /** Told once a pause is committed, before its in-flight events are waited for. */
  readonly onPaused?: (component: string) => void;
}

/**
 * The operator log's name for an action.
 *
 * @example
 * ```ts
 * operatorActionName({ kind: 'ui-lock', locked: false }) // => 'ui-lock-clear'
 * ```
 */
export function operatorActionName(action: OperatorAction): OperatorActionName {
  if (action.kind === 'ui-lock') return action.locked ? 'ui-lock-set' : 'ui-lock-clear';
  return action.kind;
}

function operatorTarget(action: OperatorAction): string | null {
  if (action.kind === 'pause' || action.kind === 'resume') return action.component;
  if (action.kind === 'purge-caches') return action.component ?? 'all';
  return null;
}

/**
 * The component `name` of `code`, if it may pause on its own: not core, not a subplugin (it
 * pauses with its parent), and its manifest says `maintenance: { disableable: true }`.
 *
 * @example
 * ```ts
 * const component = pausableComponent(await discoverSite(root), 'mod_assign') // throws OUTAGELESS_ERR_NOT_DISABLEABLE for core
 * ```
 */
export function pausableComponent(code: SiteCode, name: string): Component {
  const component = code.components.get(name);
  if (!component) throw errors.unknownComponent(name, [...code.components.keys()]);
  if (component.parent) throw errors.notDisableable(name, component.versionFile, `${name} is a subplugin: it pauses with its parent ${component.parent}`, parentOf(code, component.parent));
  if (name === 'core') throw errors.notDisableable(name, component.versionFile, 'core cannot pause on its own; use `outageless maintenance enable` for the whole site');
  if (!component.manifest.maintenance?.disableable) {
    throw errors.notDisableable(name, component.versionFile, `${component.versionFile} does not declare maintenance: { disableable: true }`);
  }
  return component;
}

/** What the "pause the parent" fix needs to know of a subplugin's parent. */
function parentOf(code: SiteCode, name: string): { name: string; versionFile: string; disableable: boolean } {
  const parent = code.components.get(name);
  return { name, versionFile: parent?.versionFile ?? name, disableable: parent?.manifest.maintenance?.disableable === true };
}

/**
 * Throws the coded error an action is refused with when it is wrong for `code` alone (a
 * component that is not there, or may not pause). Needs no database: the CLI checks a purge
 * with it before opening one, so a typo creates nothing.
 *
 * @example
 * ```ts
 * checkOperatorAction(code, { kind: 'purge-caches', component: 'mod_nope' }) // throws OUTAGELESS_ERR_UNKNOWN_COMPONENT
 * ```
 */
export function checkOperatorAction(code: SiteCode, action: OperatorAction): void {
  checkMessage(action);
  if (action.kind === 'pause' || action.kind === 'resume') pausableComponent(code, action.component);
  if (action.kind === 'purge-caches' && action.component !== null && !code.components.has(action.component)) {
    throw errors.unknownComponent(action.component, [...code.components.keys()], code.root);
  }
}

/** The longest maintenance message (or pause reason) the 503 page shows. */
export const MAX_MESSAGE_LENGTH = 500;

function checkMessage(action: OperatorAction): void {
  const text = action.kind === 'maintenance-on' ? action.message : action.kind === 'pause' ? action.reason : null;
  if (text && text.length > MAX_MESSAGE_LENGTH) {
    throw errors.usage(`the ${action.kind === 'pause' ? 'pause reason' : 'maintenance message'} is ${text.length} characters long; at most ${MAX_MESSAGE_LENGTH} fit the 503 page`);
  }
}

/** A pause or resume must not undo the pause a running staged upgrade holds for its steps. */
async function refuseIfHeldByRun(database: SiteDatabase, component: string): Promise<void> {
  const pausedByRun = (await readComponentStates(database.db)).get(component)?.pausedByRun;
  if (!pausedByRun) return;
  if ((await database.upgradeLock.liveRuns([pausedByRun])).has(pausedByRun)) throw errors.componentHeldByRun(component, pausedByRun);
}

function subpluginsOf(code: SiteCode, name: string): string[] {
  return [...code.components.values()].filter((c) => c.parent === name).map((c) => c.name);
}

async function perform(context: OperatorContext, action: OperatorAction): Promise<OperatorActionResult> {
  const { database } = context;
  const code = action.kind === 'pause' || action.kind === 'resume' || (action.kind === 'purge-caches' && action.component !== null) ? await context.loadCode() : undefined;
  if (code) checkOperatorAction(code, action);
  else checkMessage(action);
  switch (action.kind) {
    case 'maintenance-on':
    case 'maintenance-off': {
      const enabled = action.kind === 'maintenance-on';
      const message = action.kind === 'maintenance-on' ? action.message : null;
      await setSiteMaintenance(database.db, enabled, message);
      return { kind: 'maintenance', enabled, message };
    }
    case 'pause': {
      await refuseIfHeldByRun(database, action.component);
      await setComponentState(database.db, action.component, 'maintenance', { reason: action.reason });
      context.onPaused?.(action.component);
      // Events already being processed finish first; the pause is committed, so no new one starts.
      await waitForInFlightJobs(database, [action.component, ...subpluginsOf(code!, action.component)], { timeoutMs: action.drainTimeoutMs });
      return { kind: 'component-state', component: action.component, state: 'maintenance' };
    }
    case 'resume':
      await refuseIfHeldByRun(database, action.component);
      await setComponentState(database.db, action.component, 'normal');
      return { kind: 'component-state', component: action.component, state: 'normal' };
    case 'purge-caches':
      return { kind: 'purged', purge: await purgeCaches(database.db, action.component === null ? { kind: 'all' } : { kind: 'component', component: action.component }) };
    case 'ui-lock':
      await setUiUpgradeLock(database.db, action.locked);
      return { kind: 'ui-lock', locked: action.locked };
  }
}

/**
 * Does `action` under the CLI's rules and records it. A refusal (a coded error before
 * anything changed) is recorded as `refused` and rethrown; an error after the change (a pause
 * whose events are still running when `drainTimeoutMs` is up) as `failed`, also rethrown.
 * A refusal on a database without the state tables records nothing: that would be a change.
 *
 * @example
 * ```ts
 * await runOperatorAction({ database, loadCode: () => discoverSite(root), actor: cliActor() }, { kind: 'pause', component: 'mod_assign', reason: null, drainTimeoutMs: 60_000 })
 * // => { kind: 'component-state', component: 'mod_assign', state: 'maintenance' }
 * ```
 */
export async function runOperatorAction<A extends OperatorAction>(context: OperatorContext, action: A): Promise<OperatorResults[A['kind']]> {
  const base = { actor: context.actor, action: operatorActionName(action), target: operatorTarget(action) };
  const detail = action.kind === 'maintenance-on' ? action.message : action.kind === 'pause' ? action.reason : null;
  let changed = false;
  const tracked: OperatorContext = { ...context, onPaused: (component) => ((changed = true), context.onPaused?.(component)) };
  let result: OperatorActionResult;
  try {
    result = await perform(tracked, action);
  } catch (error) {
    const outcome = changed || !isOutagelessError(error) ? 'failed' : 'refused';
    const errorCode = isOutagelessError(error) ? error.code : null;
    const message = error instanceof Error ? error.message : String(error);
    // The action's own error is what the caller needs; a log that cannot be written must not hide it.
    if (changed) await recordOperatorAction(context.database.db, { ...base, outcome, errorCode, detail: message }).catch(() => {});
    else await recordUnchangedOutcome(context.database, { ...base, outcome, errorCode, detail: message });
    throw error;
  }
  await recordOperatorAction(context.database.db, { ...base, outcome: 'done', errorCode: null, detail });
  // perform() answers the result of the action's own kind.
  return result as OperatorResults[A['kind']];
}

/**
 * Logs an action that changed nothing (refused, or failed before it changed anything): only
 * where the state tables exist, since creating them would be a change, and never throwing, since
 * the action's own error is what the caller needs.
 *
 * @example
 * ```ts
 * await recordUnchangedOutcome(database, { actor, action: 'pause', target: 'mod_nope', outcome: 'refused', errorCode: error.code, detail: error.message })
 * ```
 */
export async function recordUnchangedOutcome(database: SiteDatabase, entry: Parameters<typeof recordOperatorAction>[1]): Promise<void> {
  if (!(await stateTablesExist(database.db).catch(() => false))) return;
  await recordOperatorAction(database.db, entry).catch(() => {});
}

/**
 * The CLI as an actor: the operating-system user, host and pid.
 *
 * @example
 * ```ts
 * cliActor() // => { kind: 'cli', client: 'ops@web1 pid 4242' }
 * ```
 */
export function cliActor(): OperatorActor {
  let user = process.env.USER ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): keep $USER.
  }
  return { kind: 'cli', client: `${user}@${hostname()} pid ${process.pid}` };
}
