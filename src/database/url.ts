import { join, resolve } from 'node:path';
import { errors } from '../errors.ts';

/** A parsed database location, discriminated on `kind`. */
export type DatabaseLocation =
  | { readonly kind: 'postgres'; readonly url: string }
  | { readonly kind: 'pglite'; readonly url: string; readonly dir: string }
  /** `pglite://memory` is fresh on every open; `pglite://memory/<name>` is shared within the process. */
  | { readonly kind: 'pglite-memory'; readonly url: string; readonly name: string | undefined };

/**
 * Resolves the site database the way DESIGN §4.2 says: `--database`, then
 * `OUTAGELESS_DATABASE_URL`, then `DATABASE_URL`, else the embedded database in
 * `<root>/.outageless/db`.
 *
 * @example
 * ```ts
 * resolveDatabaseUrl({ root: '/srv/lms', option: undefined, env: process.env })
 * // => 'pglite:///srv/lms/.outageless/db' when no variable is set
 * ```
 */
export function resolveDatabaseUrl(input: { root: string; option?: string | undefined; env?: NodeJS.ProcessEnv }): string {
  const env = input.env ?? process.env;
  return input.option || env.OUTAGELESS_DATABASE_URL || env.DATABASE_URL || `pglite://${join(resolve(input.root), '.outageless', 'db')}`;
}

/** Parses a database URL into a location, or throws `OUTAGELESS_ERR_DATABASE_URL`. */
export function parseDatabaseUrl(url: string): DatabaseLocation {
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url };
  const pglite = /^pglite:\/\/(.*)$/.exec(url);
  if (pglite) {
    const rest = pglite[1] ?? '';
    if (rest === 'memory' || rest.startsWith('memory/')) {
      return { kind: 'pglite-memory', url, name: rest === 'memory' ? undefined : rest.slice('memory/'.length) };
    }
    if (rest.length > 0) return { kind: 'pglite', url, dir: resolve(rest) };
  }
  // The URL is echoed back to the operator (and into logs): never with its password.
  throw errors.databaseUrl(redactDatabaseUrl(url));
}

/**
 * The URL without its password, for messages and `status`. It errs on the side of hiding: a
 * password with an unencoded `@` is hidden up to the last `@` before the query, and
 * `password=` / `sslpassword=` query parameters are hidden too.
 *
 * @example
 * ```ts
 * redactDatabaseUrl('postgres://lms:s3cret@db:5432/lms')
 * // => 'postgres://lms:***@db:5432/lms'
 * redactDatabaseUrl('mysql://db/lms?user=root&password=s3cret')
 * // => 'mysql://db/lms?user=root&password=***'
 * ```
 */
export function redactDatabaseUrl(url: string): string {
  return url
    .replace(/^([^:/?#]*:\/\/[^:/?#@]*:)[^?]*@/, '$1***@')
    .replace(/([?&](?:ssl)?password=)[^&#]*/gi, '$1***');
}
