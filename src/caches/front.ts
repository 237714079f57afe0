import type { SiteCode } from '../component/discover.ts';
import { createCacheStore, type CacheStore } from './store.ts';

/**
 * What a cache store needs from a front: its code and its cached site state. Structural, so
 * this folder does not depend on the runtime (a `Front` from `startFront` fits).
 */
export interface CacheHost {
  readonly code: SiteCode;
  state(): { readonly flags: { readonly cacheRevision: number }; readonly cacheRevisions: ReadonlyMap<string, number> };
}

/**
 * Creates the cache store of a front. Revisions come from the front's cached state, which
 * LISTEN/NOTIFY (and polling) keep fresh, so an access costs two number comparisons.
 *
 * @example
 * ```ts
 * const front = await startFront({ database, code })
 * const caches = await attachCaches(front)
 * app.decorate('outagelessCaches', caches)
 * app.addHook('onRequest', caches.requestHook)
 * ```
 */
export function attachCaches(front: CacheHost, options: { readonly now?: () => number } = {}): Promise<CacheStore> {
  return createCacheStore({
    code: front.code,
    revisions: () => {
      const state = front.state();
      return { global: state.flags.cacheRevision, components: state.cacheRevisions };
    },
    ...(options.now ? { now: options.now } : {}),
  });
}
