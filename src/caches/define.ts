import type { CacheDefinition } from './definitions.ts';

// The helper plugin files import: kept apart from validation (zod) so it loads nothing heavy.

/**
 * Declares a component's caches in `db/caches.ts`. It only freezes what it is given, so a
 * plain object default export works the same.
 *
 * @example
 * ```ts
 * import { defineCaches } from 'outageless'
 *
 * export default defineCaches({
 *   report_cache: { mode: 'application', ttlSeconds: 300, maxEntries: 1000, description: 'Rendered reports' },
 *   permissions: { mode: 'request' },
 * })
 * ```
 */
export function defineCaches<T extends Record<string, CacheDefinition>>(caches: T): Readonly<T> {
  return Object.freeze({ ...caches });
}
