import { join } from 'node:path';
import { z } from 'zod';
import type { Component, SiteCode } from '../component/discover.ts';
import { importOptional } from '../component/load.ts';
import { errors, isOutagelessError } from '../errors.ts';
import { cacheErrors } from './errors.ts';

/**
 * Cache definitions: the `db/caches.ts` contract plugin authors write to. A component declares
 * its caches by name; fronts keep them in process (see `store.ts`), and a purge moves a
 * revision in the database so every front drops them.
 */

/** `application`: shared by every request of a front; `request`: lives for one request. */
export type CacheMode = 'application' | 'request';

export interface CacheDefinition {
  readonly mode: CacheMode;
  /** Entries expire this many seconds after they were set (default: never). */
  readonly ttlSeconds?: number;
  /** At most this many entries; the least recently used go first (default: unbounded). */
  readonly maxEntries?: number;
  readonly description?: string;
}

/** A component's caches, keyed by name. */
export type CacheDefinitions = Readonly<Record<string, CacheDefinition>>;

export { defineCaches } from './define.ts';

const cacheName = z.string().regex(/^[a-z][a-z0-9_]*$/, 'cache names are lower case: letters, digits and "_", starting with a letter');

const definitionSchema = z.strictObject(
  {
    mode: z.enum(['application', 'request'], { error: 'must be "application" or "request"' }),
    ttlSeconds: z.number({ error: 'must be a number of seconds' }).positive('must be a positive number of seconds').optional(),
    maxEntries: z.number({ error: 'must be a positive integer' }).int('must be a positive integer').positive('must be a positive integer').optional(),
    description: z.string().optional(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}: allowed are mode, ttlSeconds, maxEntries, description` : 'must be an object { mode, ttlSeconds?, maxEntries?, description? }') },
);

const definitionsSchema = z.record(cacheName, definitionSchema, {
  error: (issue) => (issue.code === 'invalid_key'
    ? 'invalid cache name: names are lower case letters, digits and "_", starting with a letter'
    : 'default export must be an object of cache definitions: defineCaches({ <name>: { mode } })'),
});

/**
 * Validates a `db/caches.ts` default export; each problem names the file, component, cache
 * and field.
 *
 * @example
 * ```ts
 * validateCaches('plugins/local/reports/db/caches.ts', 'local_reports', { report_cache: { mode: 'application' } })
 * ```
 */
export function validateCaches(file: string, component: string, value: unknown): CacheDefinitions {
  if (value === undefined) throw cacheErrors.definitionInvalid(file, component, undefined, 'default', 'file has no default export');
  const result = definitionsSchema.safeParse(value);
  if (result.success) return Object.freeze(result.data);
  const issue = result.error.issues[0]!;
  const cache = issue.path.length > 0 ? String(issue.path[0]) : undefined;
  const field = issue.path.length === 0 ? 'default' : issue.path.map(String).join('.');
  throw cacheErrors.definitionInvalid(file, component, cache, field, issue.message);
}

const loaded = new WeakMap<Component, Promise<CacheDefinitions>>();

/** `db/caches.ts` of a component, shown relative to the site root. */
export function cachesFile(component: Component): string {
  return join(component.versionFile, '..', 'db', 'caches.ts');
}

/**
 * Loads and validates a component's `db/caches.ts` (once per discovered component); a
 * component without one declares no caches.
 *
 * @example
 * ```ts
 * const caches = await loadCacheDefinitions(code.components.get('local_reports')!)
 * caches.report_cache?.mode // 'application'
 * ```
 */
export function loadCacheDefinitions(component: Component): Promise<CacheDefinitions> {
  let entry = loaded.get(component);
  if (!entry) {
    entry = (async () => {
      const file = cachesFile(component);
      let value: unknown;
      try {
        value = await importOptional(join(component.dir, 'db', 'caches.ts'), component.name);
      } catch (error) {
        if (isOutagelessError(error, errors.loadFailed.code)) throw errors.loadFailed(file, error.cause, component.name);
        throw error;
      }
      return value === undefined ? Object.freeze({}) : validateCaches(file, component.name, value);
    })();
    loaded.set(component, entry);
  }
  return entry;
}

/**
 * Every component's cache definitions, keyed by component; components without caches map
 * to an empty record.
 *
 * @example
 * ```ts
 * const definitions = await loadSiteCacheDefinitions(await discoverSite(root))
 * ```
 */
export async function loadSiteCacheDefinitions(code: SiteCode): Promise<ReadonlyMap<string, CacheDefinitions>> {
  const components = [...code.components.values()];
  const definitions = await Promise.all(components.map((component) => loadCacheDefinitions(component)));
  return new Map(components.map((component, index) => [component.name, definitions[index]!]));
}
