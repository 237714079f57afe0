import type { OutageClass } from '../component/definitions.ts';
import type { SiteState } from './site-state.ts';

/**
 * The guard's decision for one request, as a pure function of the cached site state and the
 * front's view of its own code (DESIGN §4.4). Fronts call it on every request, so it only
 * reads what the state cache prepared.
 */

/** How this front's code relates to the database, per component. */
export interface ComponentView {
  readonly component: string;
  /** `ahead`: code newer than the database (pending); `behind`: older (an old front). */
  readonly relation: 'current' | 'ahead' | 'new' | 'behind';
  /** For `ahead`/`new`: the pending change's outage class. */
  readonly pendingOutage: OutageClass;
  /** For `behind`: a `site`/`component` change was applied after this code's version. */
  readonly breaking: boolean;
  /** For `ahead`: the component's `pre` steps are not applied yet (`upgrade --phase pre`). */
  readonly pendingPre: boolean;
  /** The component that pauses for it: its parent for a subplugin, else itself. */
  readonly pauseUnit: string;
}

export interface FrontView {
  /** False until the site is installed. */
  readonly installed: boolean;
  /** Any component ahead of the database. */
  readonly pending: boolean;
  readonly components: ReadonlyMap<string, ComponentView>;
  /** Components this front must not serve because the database moved past them in a breaking way. */
  readonly breaking: readonly string[];
  /** Components whose `pre` steps this code needs and the database lacks: not ready. */
  readonly waitingForPre: readonly string[];
}

export type RequestArea =
  /** A component's routes (and host routes, which count as core's). `isAdmin` is asked only when needed. */
  | { readonly kind: 'component'; readonly component: string; readonly isAdmin?: () => boolean }
  /** The admin area; admins may use it in web maintenance. */
  | { readonly kind: 'admin'; readonly isAdmin: boolean }
  /** The upgrade page and its progress: admins follow a running upgrade there. */
  | { readonly kind: 'admin-upgrade'; readonly isAdmin: boolean };

export type GuardVerdict =
  | { readonly kind: 'serve' }
  | {
      readonly kind: 'unavailable';
      /** Stable code for JSON clients. */
      readonly code:
        | 'OUTAGELESS_SITE_UPGRADING'
        | 'OUTAGELESS_SITE_MAINTENANCE'
        | 'OUTAGELESS_COMPONENT_MAINTENANCE'
        | 'OUTAGELESS_UPGRADE_PENDING'
        | 'OUTAGELESS_CODE_BEHIND'
        | 'OUTAGELESS_NOT_INSTALLED';
      readonly title: string;
      readonly message: string;
      readonly retryAfterSeconds: number;
      readonly component?: string;
    };

const SERVE: GuardVerdict = { kind: 'serve' };

export const UPGRADING_MESSAGE = 'Site is being upgraded, please retry later';

/**
 * Decides whether a request may be served.
 *
 * @example
 * ```ts
 * const verdict = decide(front.state(), front.view(), { kind: 'component', component: 'mod_assign' })
 * if (verdict.kind === 'unavailable') reply.code(503).header('retry-after', verdict.retryAfterSeconds)
 * ```
 */
export function decide(state: SiteState, view: FrontView, area: RequestArea): GuardVerdict {
  if (state.upgrade?.mode === 'maintenance') {
    if (area.kind === 'admin-upgrade' && area.isAdmin) return SERVE;
    return { kind: 'unavailable', code: 'OUTAGELESS_SITE_UPGRADING', title: 'Site is being upgraded', message: UPGRADING_MESSAGE, retryAfterSeconds: 30 };
  }
  if (state.flags.maintenance.enabled) {
    if (area.kind !== 'component' && area.isAdmin) return SERVE;
    return {
      kind: 'unavailable',
      code: 'OUTAGELESS_SITE_MAINTENANCE',
      title: 'Site maintenance',
      message: state.flags.maintenance.message ?? 'This site is undergoing maintenance and will be back shortly',
      retryAfterSeconds: 60,
    };
  }
  if (area.kind !== 'component') return SERVE;
  if (!view.installed) {
    return { kind: 'unavailable', code: 'OUTAGELESS_NOT_INSTALLED', title: 'Site not installed', message: 'This site is not installed yet', retryAfterSeconds: 60 };
  }

  const core = view.components.get('core');
  const own = view.components.get(area.component);
  const paused = state.componentStates.get(own?.pauseUnit ?? area.component);
  if (paused && !(paused.state === 'post-install' && area.isAdmin?.())) {
    return {
      kind: 'unavailable',
      code: 'OUTAGELESS_COMPONENT_MAINTENANCE',
      title: `${paused.component} is under maintenance`,
      message: paused.state === 'post-install'
        ? `${paused.component} is finishing its upgrade and will be back shortly; the rest of the site is available`
        : `${paused.component} is under maintenance and will be back shortly; the rest of the site is available`,
      retryAfterSeconds: 30,
      component: paused.component,
    };
  }
  if (own?.relation === 'new') {
    // Its tables do not exist yet: serving it could only fail.
    return { kind: 'unavailable', code: 'OUTAGELESS_UPGRADE_PENDING', title: 'Not installed yet', message: `${own.component} is not installed yet; please retry later`, retryAfterSeconds: 30, component: own.component };
  }
  for (const candidate of [core, own]) {
    if (candidate?.breaking) {
      return {
        kind: 'unavailable',
        code: 'OUTAGELESS_CODE_BEHIND',
        title: 'This server runs older code',
        message: `${candidate.component} was upgraded with a breaking change after this server's code; please retry`,
        retryAfterSeconds: 5,
        component: candidate.component,
      };
    }
  }
  // New code never serves against a database that lacks its expand steps, UI lock or not.
  for (const candidate of [core, own]) {
    if (candidate?.pendingPre) {
      return {
        kind: 'unavailable',
        code: 'OUTAGELESS_UPGRADE_PENDING',
        title: 'Upgrade pending',
        message: `${candidate.component} is waiting for its pre-upgrade steps (outageless upgrade --phase pre); please retry`,
        retryAfterSeconds: 5,
        component: candidate.component,
      };
    }
  }
  // With the UI lock set, the CLI owns the rollout: code ahead of the database serves normally.
  if (state.flags.uiUpgradeLock) return SERVE;
  for (const candidate of [core, own]) {
    if (candidate && (candidate.relation === 'ahead' || candidate.relation === 'new') && candidate.pendingOutage !== 'none') {
      return {
        kind: 'unavailable',
        code: 'OUTAGELESS_UPGRADE_PENDING',
        title: 'Upgrade pending',
        message: `${candidate.component} is waiting for an upgrade that needs maintenance; please retry later`,
        retryAfterSeconds: 30,
        component: candidate.component,
      };
    }
  }
  return SERVE;
}
