import type { Kysely } from 'kysely';
import type { CachePurgePlan } from '../plan/plan.ts';
import { bumpComponentCacheRevision } from '../state/cache-revisions.ts';
import { bumpCacheRevision } from '../state/flags.ts';

/**
 * Purges move revisions in the site database; they delete nothing. Every front compares
 * the revisions on each cache access (see `store.ts`) and drops what was built under older
 * ones, so one purge reaches every front, whichever machine it runs on.
 */

/** Every cache of the site, or one component's caches only. */
export type PurgeTarget = { readonly kind: 'all' } | { readonly kind: 'component'; readonly component: string };

/** What a purge did: the revision it moved and its new value. */
export type PurgeResult =
  | { readonly kind: 'all'; readonly revision: number }
  | { readonly kind: 'component'; readonly component: string; readonly revision: number };

/**
 * Purges caches on every front. `all` moves the global revision; `component` moves only that
 * component's, so other components keep their entries.
 *
 * @example
 * ```ts
 * await purgeCaches(database.db, { kind: 'component', component: 'mod_assign' }) // => { kind: 'component', component: 'mod_assign', revision: 2 }
 * await purgeCaches(database.db, { kind: 'all' })                               // => { kind: 'all', revision: 5 }
 * ```
 */
export async function purgeCaches(db: Kysely<any>, target: PurgeTarget): Promise<PurgeResult> {
  if (target.kind === 'all') return { kind: 'all', revision: await bumpCacheRevision(db) };
  return { kind: 'component', component: target.component, revision: await bumpComponentCacheRevision(db, target.component) };
}

/**
 * Runs the purge a plan asks for (the union of the touched components' `metadata` hooks):
 * `all` moves the global revision, `own` each listed component's, `none` nothing.
 *
 * @example
 * ```ts
 * await purgePlannedCaches(db, { kind: 'own', components: ['mod_assign'] }) // => [{ kind: 'component', component: 'mod_assign', revision: 1 }]
 * ```
 */
export async function purgePlannedCaches(db: Kysely<any>, plan: CachePurgePlan): Promise<PurgeResult[]> {
  if (plan.kind === 'none') return [];
  if (plan.kind === 'all') return [await purgeCaches(db, { kind: 'all' })];
  const results: PurgeResult[] = [];
  // One after another: each bump is its own statement and NOTIFY; order matches the plan.
  for (const component of plan.components) results.push(await purgeCaches(db, { kind: 'component', component }));
  return results;
}
