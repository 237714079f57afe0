import { randomUUID } from 'node:crypto';
import type { SiteCode } from '../component/discover.ts';
import type { SiteDatabase } from '../database/open.ts';
import { buildPlan, type Plan } from '../plan/plan.ts';
import { ensureStateTables } from '../state/tables.ts';
import { DEFAULT_HEARTBEAT_MS, frontComponents, recordFront, removeFront } from './front-registry.ts';
import type { ComponentView, FrontView } from './guard.ts';
import { readSiteState, type SiteState } from './site-state.ts';

/**
 * A front: one web process of a site. It keeps the site state cached, refreshed the moment
 * a NOTIFY arrives and by polling as a fallback (a killed upgrader sends no NOTIFY), derives
 * its view of its own code from it, and keeps its row in the front registry fresh.
 */
export interface Front {
  readonly id: string;
  readonly code: SiteCode;
  readonly database: SiteDatabase;
  /** How often this front refreshes its registry row; fronts missing 3 beats count as gone. */
  readonly heartbeatMs: number;
  /** The cached state; never stale by more than one poll interval. */
  state(): SiteState;
  view(): FrontView;
  /** The plan as this front's code sees it (`behind` for components the database passed). */
  plan(): Plan;
  /** Re-reads the state now (after this process changed it, say). */
  refresh(): Promise<void>;
  /** Called after every refresh that changed something. */
  onChange(listener: (state: SiteState) => void): () => void;
  /** Records the URL this front serves at, for the registry. */
  setUrl(url: string): void;
  close(): Promise<void>;
}

export interface FrontOptions {
  readonly database: SiteDatabase;
  readonly code: SiteCode;
  /** Fallback polling of the state (default 1000 ms). */
  readonly pollIntervalMs?: number;
  /** Registry heartbeat (default 5000 ms). */
  readonly heartbeatMs?: number;
  readonly onError?: (error: unknown) => void;
}

export const STATE_CHANNEL = 'outageless_state';

function deriveView(state: SiteState, plan: Plan): FrontView {
  const components = new Map<string, ComponentView>();
  for (const item of plan.items) {
    if (!item.code) continue;
    const relation = item.action === 'install' ? 'new' : item.action === 'upgrade' ? 'ahead' : item.action === 'behind' ? 'behind' : 'current';
    const breakingSince = state.breakingSince.get(item.component);
    const breaking = relation === 'behind' && breakingSince !== undefined && breakingSince > item.code.manifest.version;
    // Its expand (pre) steps are not in yet: this code must not serve against that database.
    const pendingPre = relation === 'ahead' && item.steps.some((step) => step.phase === 'pre' && !step.alreadyApplied);
    components.set(item.component, { component: item.component, relation, pendingOutage: item.outage, breaking, pendingPre, pauseUnit: item.code.parent ?? item.component });
  }
  return {
    installed: state.installed !== undefined,
    pending: plan.pending.length > 0,
    components,
    breaking: [...components.values()].filter((c) => c.breaking).map((c) => c.component),
    waitingForPre: [...components.values()].filter((c) => c.pendingPre).map((c) => c.component),
  };
}

/**
 * Starts a front for `code` on `database`: reads the state, subscribes to changes and
 * registers in the front registry.
 *
 * @example
 * ```ts
 * const front = await startFront({ database, code: await discoverSite(root) })
 * front.view().pending // true when this code is ahead of the database
 * ```
 */
export async function startFront(options: FrontOptions): Promise<Front> {
  const { database, code } = options;
  const id = randomUUID();
  const startedAt = new Date();
  const components = await frontComponents(code);
  const listeners = new Set<(state: SiteState) => void>();
  const onError = options.onError ?? (() => {});
  let url: string | null = null;

  const compute = async () => {
    const state = await readSiteState(database.db, database.upgradeLock);
    const plan = await buildPlan({ code, installed: state.installed, appliedSteps: state.appliedSteps, olderCode: 'report' });
    return { state, plan, view: deriveView(state, plan) };
  };
  let current = await compute();

  // Refreshes coalesce: a burst of NOTIFYs costs one read in flight plus at most one more.
  let running: Promise<void> | undefined;
  let again = false;
  const refresh = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          const next = await compute();
          const changed = JSON.stringify(summary(next.state)) !== JSON.stringify(summary(current.state));
          current = next;
          if (changed) for (const listener of listeners) listener(next.state);
        } catch (error) {
          onError(error); // keep serving on the last known state; the next poll retries
        }
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const unlisten = await database.listen(STATE_CHANNEL, () => void refresh());
  const poll = setInterval(() => void refresh(), options.pollIntervalMs ?? 1000);
  poll.unref();

  await ensureStateTables(database.db);
  const heartbeat = () => recordFront(database.db, { id, url, root: code.root, startedAt, components }).catch(onError);
  await heartbeat();
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const beat = setInterval(() => void heartbeat(), heartbeatMs);
  beat.unref();

  return {
    id,
    code,
    database,
    heartbeatMs,
    state: () => current.state,
    view: () => current.view,
    plan: () => current.plan,
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setUrl(value) {
      url = value;
      void heartbeat();
    },
    async close() {
      clearInterval(poll);
      clearInterval(beat);
      await unlisten();
      await running;
      await removeFront(database.db, id).catch(onError);
    },
  };
}

/** The parts of the state whose change listeners care about. */
function summary(state: SiteState) {
  return {
    flags: state.flags,
    upgrade: state.upgrade ? { mode: state.upgrade.mode, pid: state.upgrade.pid, host: state.upgrade.host } : null,
    installed: state.installed ? [...state.installed.values()].map((c) => [c.component, c.version, c.definitionsHash]) : null,
    breaking: [...state.breakingSince],
    componentStates: [...state.componentStates.values()].map((c) => [c.component, c.state]),
    cacheRevisions: [...state.cacheRevisions],
  };
}
