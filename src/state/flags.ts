import { sql, type Kysely } from 'kysely';
import { notifyStateChanged } from '../database/open.ts';
import { ensureStateTables, stateTablesExist } from './tables.ts';

/**
 * Site-wide flags an operator sets: whole-site maintenance, the UI upgrade lock and the
 * cache revision. Each write sends a NOTIFY so fronts refresh at once instead of at their
 * next poll.
 */
export interface SiteFlags {
  readonly maintenance: { readonly enabled: boolean; readonly message: string | null };
  readonly uiUpgradeLock: boolean;
  /** Bumped by every purge; fronts drop caches built under an older revision. */
  readonly cacheRevision: number;
}

const DEFAULT_FLAGS: SiteFlags = { maintenance: { enabled: false, message: null }, uiUpgradeLock: false, cacheRevision: 0 };

const FLAG_NAMES = { maintenance: 'maintenance', uiUpgradeLock: 'ui_upgrade_lock', cacheRevision: 'cache_revision' } as const;

export async function readFlags(db: Kysely<any>): Promise<SiteFlags> {
  if (!(await stateTablesExist(db))) return DEFAULT_FLAGS;
  const rows = await db.selectFrom('outageless_flag').select(['name', 'value']).execute();
  const byName = new Map(rows.map((row) => [row.name as string, row.value as unknown]));
  return {
    maintenance: (byName.get(FLAG_NAMES.maintenance) as SiteFlags['maintenance'] | undefined) ?? DEFAULT_FLAGS.maintenance,
    uiUpgradeLock: (byName.get(FLAG_NAMES.uiUpgradeLock) as boolean | undefined) ?? false,
    cacheRevision: (byName.get(FLAG_NAMES.cacheRevision) as number | undefined) ?? 0,
  };
}

async function writeFlag(db: Kysely<any>, name: string, value: unknown): Promise<void> {
  await ensureStateTables(db);
  const json = JSON.stringify(value);
  await db
    .insertInto('outageless_flag')
    .values({ name, value: json, updated_at: new Date() })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value: json, updated_at: new Date() }))
    .execute();
  await notifyStateChanged(db, name);
}

/** Sets or clears the UI upgrade lock: while set, the web UI never offers or starts an upgrade. */
export function setUiUpgradeLock(db: Kysely<any>, locked: boolean): Promise<void> {
  return writeFlag(db, FLAG_NAMES.uiUpgradeLock, locked);
}

/** Turns whole-site maintenance on or off. */
export function setSiteMaintenance(db: Kysely<any>, enabled: boolean, message: string | null = null): Promise<void> {
  return writeFlag(db, FLAG_NAMES.maintenance, { enabled, message });
}

/** Purges every cache by moving the revision forward; returns the new revision. */
export async function bumpCacheRevision(db: Kysely<any>): Promise<number> {
  await ensureStateTables(db);
  // One statement, so two purges at once both count (a read-then-write would lose one).
  const { rows } = await sql<{ revision: number }>`
    insert into outageless_flag (name, value, updated_at) values (${FLAG_NAMES.cacheRevision}, '1'::jsonb, now())
    on conflict (name) do update set value = to_jsonb((outageless_flag.value #>> '{}')::bigint + 1), updated_at = now()
    returning (value #>> '{}')::bigint as revision`.execute(db);
  await notifyStateChanged(db, FLAG_NAMES.cacheRevision);
  return Number(rows[0]!.revision);
}
