import type { Kysely } from 'kysely';
import type { SiteDatabase } from '../database/open.ts';

/**
 * The site database as routes see it: `app.outagelessDatabase`. One connection pool per front,
 * shared by every component; the type parameter says which tables a route works with.
 *
 * @example
 * ```ts
 * import type { FastifyInstance } from 'fastify'
 * import type { TablesOf } from 'outageless'
 *
 * type Tables = TablesOf<typeof import('./db/schema.ts').default>
 *
 * export default async function routes(app: FastifyInstance) {
 *   const db = app.outagelessDatabase.kysely<Tables>()
 *   app.get('/posts', () => db.selectFrom('block_news_post').select(['id', 'subject']).execute())
 * }
 * ```
 */
export interface OutagelessDatabase {
  /** `postgres` or `pglite` (the embedded database), for the rare query that differs. */
  readonly kind: SiteDatabase['kind'];
  /**
   * Kysely over the site database, typed with `Tables` (usually `TablesOf<typeof schema>` of
   * the component's own `db/schema.ts`). Queries run on the front's pool; transactions with
   * `.transaction().execute(...)`. The `outageless_*` tables belong to the framework: read
   * them through its APIs, never write them.
   */
  kysely<Tables = Record<string, Record<string, unknown>>>(): Kysely<Tables>;
}

/**
 * The route-facing view of an open site database (the plugin decorates `app.outagelessDatabase` with it).
 *
 * @example
 * ```ts
 * app.decorate('outagelessDatabase', createDatabaseApi(database))
 * ```
 */
export function createDatabaseApi(database: SiteDatabase): OutagelessDatabase {
  return {
    kind: database.kind,
    // One Kysely instance: the type parameter is a compile-time view, not a new pool.
    kysely: <Tables>() => database.db as Kysely<Tables>,
  };
}
