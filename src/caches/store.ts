import { AsyncLocalStorage } from 'node:async_hooks';
import type { SiteCode } from '../component/discover.ts';
import { cachesFile, loadSiteCacheDefinitions, type CacheDefinition, type CacheDefinitions } from './definitions.ts';
import { cacheErrors } from './errors.ts';

/**
 * The in-process cache store of one front. Entries live in this process; what they were
 * built under lives in the database: a global revision (`flags.cacheRevision`) and one per
 * component (`outageless_cache_revision`). Every access compares the two numbers the front
 * already holds in its site state with the ones the component's entries were built under,
 * and drops the component's entries when either moved. That is how a purge run anywhere
 * reaches every front, with no I/O on the request path.
 */

/** The revisions a store compares against; read on every access, so it must be cheap. */
export interface CacheRevisions {
  readonly global: number;
  readonly components: ReadonlyMap<string, number>;
}

/** One named cache of a component. Values are kept by reference: do not mutate them. */
export interface Cache<T = unknown> {
  /** The value, or undefined when absent, expired or purged. */
  get(key: string): T | undefined;
  set(key: string, value: T): void;
  /** True when an entry was there. */
  delete(key: string): boolean;
  /**
   * The cached value, or the loader's, stored for next time. Concurrent calls for the same
   * key share one load. A value loaded across a purge is returned but not stored.
   */
  getOrLoad(key: string, loader: (key: string) => T | Promise<T>): Promise<T>;
}

export interface CacheStore {
  /** A component's declared cache; an undeclared name is `OUTAGELESS_ERR_UNKNOWN_CACHE`. */
  cache<T = unknown>(component: string, name: string): Cache<T>;
  /** The definitions the store was built from, by component. */
  readonly definitions: ReadonlyMap<string, CacheDefinitions>;
  /** Runs `fn` in a fresh request scope: `request` caches used inside it live until it ends. */
  runInRequest<R>(fn: () => R): R;
  /**
   * A Fastify `onRequest` hook (callback style) that opens a request scope for the rest of
   * the request: `app.addHook('onRequest', store.requestHook)`.
   */
  readonly requestHook: (request: unknown, reply: unknown, done: () => void) => void;
}

export interface CacheStoreOptions {
  readonly revisions: () => CacheRevisions;
  /** Clock in milliseconds, for tests (default `Date.now`). */
  readonly now?: () => number;
  /** The site's code, so errors can name each component's `db/caches.ts`. */
  readonly code?: SiteCode;
}

interface Entry {
  value: unknown;
  expiresAt: number;
}

/** A map with a TTL per entry and LRU eviction (a Map iterates in insertion order). */
class EntryMap {
  readonly entries = new Map<string, Entry>();
  readonly inflight = new Map<string, Promise<unknown>>();

  private readonly definition: CacheDefinition;
  private readonly now: () => number;

  constructor(definition: CacheDefinition, now: () => number) {
    this.definition = definition;
    this.now = now;
  }

  get(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    if (this.definition.maxEntries !== undefined) {
      // Touch: move to the end, so eviction takes the least recently used.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, value: unknown): void {
    const ttl = this.definition.ttlSeconds;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: ttl === undefined ? Infinity : this.now() + ttl * 1000 });
    const max = this.definition.maxEntries;
    if (max !== undefined) {
      for (const oldest of this.entries.keys()) {
        if (this.entries.size <= max) break;
        this.entries.delete(oldest);
      }
    }
  }
}

/** A component's application caches and the revisions they were built under. */
interface Bucket {
  global: number;
  revision: number;
  /** Moves on every drop, so a load that spans a purge does not store its value. */
  generation: number;
  caches: Map<string, EntryMap>;
}

/**
 * Builds a store from definitions already loaded (tests, hosts that load them themselves).
 *
 * @example
 * ```ts
 * const store = cacheStoreFromDefinitions(new Map([['mod_assign', { grades: { mode: 'application', ttlSeconds: 60 } }]]), {
 *   revisions: () => ({ global: front.state().flags.cacheRevision, components: front.state().cacheRevisions }),
 * })
 * const grades = store.cache<number>('mod_assign', 'grades')
 * const grade = await grades.getOrLoad('user:42', () => loadGrade(42))
 * ```
 */
export function cacheStoreFromDefinitions(definitions: ReadonlyMap<string, CacheDefinitions>, options: CacheStoreOptions): CacheStore {
  const now = options.now ?? Date.now;
  const buckets = new Map<string, Bucket>();
  const requests = new AsyncLocalStorage<Map<string, EntryMap>>();
  const handles = new Map<string, Cache<unknown>>();
  const fileOf = (component: string): string => {
    const found = options.code?.components.get(component);
    return found ? cachesFile(found) : `db/caches.ts of ${component}`;
  };

  /** The component's bucket, emptied first if a revision moved since it was filled. */
  const bucketOf = (component: string): Bucket => {
    const revisions = options.revisions();
    const global = revisions.global;
    const revision = revisions.components.get(component) ?? 0;
    let bucket = buckets.get(component);
    if (!bucket) {
      bucket = { global, revision, generation: 0, caches: new Map() };
      buckets.set(component, bucket);
    } else if (bucket.global !== global || bucket.revision !== revision) {
      bucket.global = global;
      bucket.revision = revision;
      bucket.generation++;
      bucket.caches = new Map();
    }
    return bucket;
  };

  const makeHandle = (component: string, name: string, definition: CacheDefinition): Cache<unknown> => {
    const id = `${component}\u0000${name}`;
    // The map to use now, and a check that it is still the live one after an await.
    const current = (): { map: EntryMap | undefined; live: () => boolean } => {
      if (definition.mode === 'request') {
        const scope = requests.getStore();
        // Outside a request scope nothing is retained: every get misses, loaders always run.
        if (!scope) return { map: undefined, live: () => false };
        let map = scope.get(id);
        if (!map) scope.set(id, (map = new EntryMap(definition, now)));
        return { map, live: () => scope.get(id) === map };
      }
      const bucket = bucketOf(component);
      let map = bucket.caches.get(name);
      if (!map) bucket.caches.set(name, (map = new EntryMap(definition, now)));
      const generation = bucket.generation;
      return { map, live: () => bucketOf(component).generation === generation };
    };

    return {
      get: (key) => current().map?.get(key)?.value,
      set: (key, value) => current().map?.set(key, value),
      delete: (key) => current().map?.entries.delete(key) ?? false,
      async getOrLoad(key, loader) {
        const { map, live } = current();
        if (!map) return loader(key);
        const hit = map.get(key);
        if (hit) return hit.value;
        const pending = map.inflight.get(key);
        if (pending) return pending;
        const load = (async () => {
          try {
            const value = await loader(key);
            // Purged while loading: the value may be built on what the purge invalidated.
            if (live()) map.set(key, value);
            return value;
          } finally {
            map.inflight.delete(key);
          }
        })();
        map.inflight.set(key, load);
        return load;
      },
    };
  };

  return {
    definitions,
    cache<T = unknown>(component: string, name: string): Cache<T> {
      const id = `${component}\u0000${name}`;
      let handle = handles.get(id);
      if (!handle) {
        const declared = definitions.get(component) ?? {};
        const definition = Object.hasOwn(declared, name) ? declared[name] : undefined;
        if (!definition) throw cacheErrors.unknownCache(component, name, fileOf(component), Object.keys(declared));
        handles.set(id, (handle = makeHandle(component, name, definition)));
      }
      return handle as Cache<T>;
    },
    runInRequest: (fn) => requests.run(new Map(), fn),
    requestHook: (_request, _reply, done) => requests.run(new Map(), done),
  };
}


/**
 * Creates a front's cache store: loads every component's `db/caches.ts` (validated) and
 * checks `revisions()` on each access.
 *
 * @example
 * ```ts
 * const store = await createCacheStore({
 *   code: front.code,
 *   revisions: () => ({ global: front.state().flags.cacheRevision, components: front.state().cacheRevisions }),
 * })
 * store.cache('local_reports', 'report_cache').set('weekly', html)
 * ```
 */
export async function createCacheStore(options: CacheStoreOptions & { readonly code: SiteCode }): Promise<CacheStore> {
  return cacheStoreFromDefinitions(await loadSiteCacheDefinitions(options.code), options);
}
