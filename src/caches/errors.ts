import { errorFactory, errors } from '../errors.ts';

/**
 * Typed errors of cache definitions, stores and purges. Codes are part of the public contract
 * (runbooks grep for them): never rename one.
 */

export const cacheErrors = {
  /** A `db/caches.ts` whose default export does not match the contract. */
  definitionInvalid: errorFactory('OUTAGELESS_ERR_CACHE_DEFINITION', (file: string, component: string, cache: string | undefined, field: string, problem: string) => ({
    message: cache ? `cache "${cache}"${field.startsWith(`${cache}.`) ? `, ${field.slice(cache.length + 1)}` : ''}: ${problem}` : `${field}: ${problem}`,
    location: { file, component, field },
    hint: `Correct ${file}: its default export is defineCaches({ <name>: { mode: 'application' | 'request', ttlSeconds?, maxEntries?, description? } }), names in lower case.`,
  })),
  /** `cache(component, name)` for a name the component's `db/caches.ts` does not declare. */
  unknownCache: errorFactory('OUTAGELESS_ERR_UNKNOWN_CACHE', (component: string, cache: string, file: string, known: readonly string[]) => ({
    message: `${component} declares no cache "${cache}" (declared: ${known.length > 0 ? known.join(', ') : 'none'})`,
    location: { component, file, field: cache },
    hint: `Declare "${cache}" in ${file} (defineCaches({ ${cache}: { mode: 'application' } })), or use a declared name.`,
  })),
  /**
   * `purge-caches --component <name>` for a component that is not on disk: the one factory of
   * that mistake, {@link errors.unknownComponent}, kept here so `cacheErrors.unknownComponent.code`
   * still names it.
   *
   * @deprecated Use `errors.unknownComponent(name, known, root)`.
   */
  unknownComponent: errors.unknownComponent,
} as const;
