/** Cache definitions (`db/caches.ts`), the in-process store of a front, and purges. */
export { defineCaches, validateCaches, loadCacheDefinitions, loadSiteCacheDefinitions, cachesFile, type CacheDefinition, type CacheDefinitions, type CacheMode } from './definitions.ts';
export { createCacheStore, cacheStoreFromDefinitions, type Cache, type CacheStore, type CacheStoreOptions, type CacheRevisions } from './store.ts';
export { purgeCaches, purgePlannedCaches, type PurgeTarget, type PurgeResult } from './purge.ts';
export { attachCaches, type CacheHost } from './front.ts';
export { cacheErrors } from './errors.ts';
