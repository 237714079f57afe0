import { sql, type Kysely } from 'kysely';
import type { UpgradeLock, UpgradeLockHolder } from '../database/upgrade-lock.ts';
import { readFlags, type SiteFlags } from '../state/flags.ts';
import { readAppliedSteps, readInstalled, type InstalledComponent } from '../state/installed.ts';
import { stateTablesExist } from '../state/tables.ts';
import { readComponentStates, type ComponentState } from '../state/component-state.ts';
import { readCacheRevisions } from '../state/cache-revisions.ts';

/**
 * Everything a front needs to guard a request, read in one go from the site database:
 * flags, the running upgrade (derived from the lock), installed versions, and where
 * breaking changes were applied.
 */
export interface SiteState {
  readonly installed: ReadonlyMap<string, InstalledComponent> | undefined;
  readonly appliedSteps: ReadonlyMap<string, ReadonlySet<string>>;
  readonly flags: SiteFlags;
  readonly upgrade: UpgradeLockHolder | undefined;
  /**
   * Per component, the highest version at which a `site` or `component` class change was
   * applied. A front whose code is older than that must not serve the component.
   */
  readonly breakingSince: ReadonlyMap<string, number>;
  /** Components paused on their own (absent: normal). */
  readonly componentStates: ReadonlyMap<string, ComponentState>;
  /** Per-component cache revisions; the global one is `flags.cacheRevision`. */
  readonly cacheRevisions: ReadonlyMap<string, number>;
  readonly readAt: Date;
}

async function readBreakingSince(db: Kysely<any>): Promise<Map<string, number>> {
  if (!(await stateTablesExist(db))) return new Map();
  const { rows } = await sql<{ component: string; version: number }>`
    select component, max(version) as version from outageless_upgrade_log
     where status in ('applied', 'upgraded') and outage in ('site', 'component')
     group by component`.execute(db);
  return new Map(rows.map((row) => [row.component, Number(row.version)]));
}

/**
 * Reads the site state.
 *
 * @example
 * ```ts
 * const state = await readSiteState(database.db, database.upgradeLock)
 * if (state.upgrade?.mode === 'maintenance') reply.code(503)
 * ```
 */
export async function readSiteState(db: Kysely<any>, lock: UpgradeLock): Promise<SiteState> {
  const [installed, appliedSteps, flags, upgrade, breakingSince, componentStates, cacheRevisions] = await Promise.all([
    readInstalled(db),
    readAppliedSteps(db),
    readFlags(db),
    lock.holder(),
    readBreakingSince(db),
    readComponentStates(db),
    readCacheRevisions(db),
  ]);
  return { installed, appliedSteps, flags, upgrade, breakingSince, componentStates, cacheRevisions, readAt: new Date() };
}
