import type { Kysely } from 'kysely';
import type { SiteCode } from '../component/discover.ts';
import { loadSchema } from '../component/files.ts';
import type { InstalledComponent } from './installed.ts';
import { ensureStateTables, tableExists } from './tables.ts';

/**
 * What each installed component's `db/schema.ts` declared when it was last installed or
 * upgraded: its tables, and its parent when it is a subplugin. The upgrade runner writes it
 * with the component's installed record, in the same transaction, so it is exactly the schema
 * the database was brought to. `outageless uninstall` reads it once the code is gone, since
 * nothing on disk says any more which tables were the component's.
 */
export interface RecordedSchema {
  readonly component: string;
  readonly parent: string | null;
  readonly tables: readonly string[];
}

/**
 * Records (or replaces) a component's tables and parent.
 *
 * @example
 * ```ts
 * await recordComponentSchema(trx, { component: 'mod_assign', parent: null, tables: ['assign', 'assign_submission'] })
 * ```
 */
export async function recordComponentSchema(db: Kysely<any>, record: RecordedSchema): Promise<void> {
  const values = { parent: record.parent, tables: JSON.stringify([...record.tables].sort()), recorded_at: new Date() };
  await db
    .insertInto('outageless_component_schema')
    .values({ component: record.component, ...values })
    .onConflict((oc) => oc.column('component').doUpdateSet(values))
    .execute();
}

/**
 * The recorded schemas, keyed by component. A component installed by an outageless older than
 * this record has no entry (and a site whose state tables predate it has none at all).
 *
 * @example
 * ```ts
 * (await readComponentSchemas(db)).get('block_news')?.tables // ['block_news_post', 'block_news_subscription']
 * ```
 */
export async function readComponentSchemas(db: Kysely<any>): Promise<ReadonlyMap<string, RecordedSchema>> {
  if (!(await tableExists(db, 'outageless_component_schema'))) return new Map();
  const rows = await db.selectFrom('outageless_component_schema').select(['component', 'parent', 'tables']).execute();
  return new Map(rows.map((row) => [row.component as string, { component: row.component, parent: row.parent, tables: (row.tables ?? []) as string[] }]));
}

/**
 * Records the schema of every installed component that has no record yet, for components
 * whose code on disk is exactly what is installed (same version, same `db/` hashes, so its
 * `db/schema.ts` is the one that was installed). A site installed by an older outageless gains
 * its records on its next `outageless upgrade`, pending or not. Never replaces a record: the
 * runner's, written with the installed record, is the authority.
 *
 * @example
 * ```ts
 * await recordMissingComponentSchemas(database.db, code, await readInstalled(database.db))
 * ```
 */
export async function recordMissingComponentSchemas(db: Kysely<any>, code: SiteCode, installed: ReadonlyMap<string, InstalledComponent> | undefined): Promise<string[]> {
  if (!installed) return [];
  const recorded = await readComponentSchemas(db);
  const candidates = [...installed.values()].filter((row) => {
    const component = code.components.get(row.component);
    return !recorded.has(row.component) && component !== undefined && component.manifest.version === row.version && component.definitions.hash === row.definitionsHash;
  });
  if (candidates.length === 0) return [];
  await ensureStateTables(db);
  const written: string[] = [];
  for (const row of candidates) {
    const component = code.components.get(row.component)!;
    const tables = Object.keys((await loadSchema(code, component)).tables).sort();
    const { numInsertedOrUpdatedRows } = await db
      .insertInto('outageless_component_schema')
      .values({ component: row.component, parent: component.parent ?? null, tables: JSON.stringify(tables), recorded_at: new Date() })
      .onConflict((oc) => oc.column('component').doNothing())
      .executeTakeFirst();
    if ((numInsertedOrUpdatedRows ?? 0n) > 0n) written.push(row.component);
  }
  return written;
}
