import { sql, type Kysely } from 'kysely';
import { notifyStateChanged } from '../database/open.ts';
import { ensureStateTables, tableExists } from './tables.ts';

/**
 * Cache revisions in the site database. Fronts keep caches in process and drop a component's
 * entries when its revision (or the global one) moves, so a purge reaches every front.
 */
export async function readCacheRevisions(db: Kysely<any>): Promise<ReadonlyMap<string, number>> {
  if (!(await tableExists(db, 'outageless_cache_revision'))) return new Map();
  const rows = await db.selectFrom('outageless_cache_revision').select(['component', 'revision']).execute();
  return new Map(rows.map((row) => [row.component as string, Number(row.revision)]));
}

/**
 * Purges one component's caches on every front by moving its revision forward.
 *
 * @example
 * ```ts
 * await bumpComponentCacheRevision(db, 'mod_assign') // => 3
 * ```
 */
export async function bumpComponentCacheRevision(db: Kysely<any>, component: string): Promise<number> {
  await ensureStateTables(db);
  const { rows } = await sql<{ revision: number }>`
    insert into outageless_cache_revision (component, revision, updated_at) values (${component}, 1, now())
    on conflict (component) do update set revision = outageless_cache_revision.revision + 1, updated_at = now()
    returning revision`.execute(db);
  await notifyStateChanged(db, `cache:${component}`);
  return Number(rows[0]!.revision);
}
