import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { SiteCode } from '../component/discover.ts';
import type { InstalledComponent } from '../state/installed.ts';
import { tableExists } from '../state/tables.ts';
import { formatVersions, loadFormats } from '../migrations/formats.ts';

/**
 * The front registry: each web process records the code it runs, so `status` and the admin
 * page can show which fronts match, trail or lead the database during a rollout.
 */

export interface FrontComponentCode {
  readonly version: number;
  readonly codeIncrement: string | null;
  /** The read and write versions of the component's data formats in this front's code. */
  readonly formats?: Readonly<Record<string, { readonly read: number; readonly write: number }>>;
}

/** How a front's code compares with the installed versions. */
export type FrontRelation = 'matches' | 'trails' | 'leads' | 'mixed';

export interface FrontRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly url: string | null;
  readonly root: string;
  readonly startedAt: Date;
  readonly lastSeen: Date;
  readonly components: Readonly<Record<string, FrontComponentCode>>;
  readonly relation: FrontRelation;
  /** Components whose code differs from the database, with both versions. */
  readonly differences: readonly { readonly component: string; readonly code: number | null; readonly installed: number | null }[];
}

/** A front is gone once it has missed this many heartbeats. */
export const STALE_AFTER_HEARTBEATS = 3;

/** How often a front refreshes its row unless configured otherwise. */
export const DEFAULT_HEARTBEAT_MS = 5000;

/** What a front records of its code: versions, and the formats each component writes. */
export async function frontComponents(code: SiteCode): Promise<Record<string, FrontComponentCode>> {
  const components: Record<string, FrontComponentCode> = {};
  for (const component of code.components.values()) {
    const formats = formatVersions(await loadFormats(code, component))[component.name];
    components[component.name] = { version: component.manifest.version, codeIncrement: component.manifest.codeIncrement ?? null, ...(formats ? { formats } : {}) };
  }
  return components;
}

/** Inserts or refreshes this front's row. */
export async function recordFront(
  db: Kysely<any>,
  front: { id: string; url: string | null; root: string; startedAt: Date; components: Readonly<Record<string, FrontComponentCode>> },
): Promise<void> {
  const now = new Date();
  const components = JSON.stringify(front.components);
  await db
    .insertInto('outageless_front')
    .values({ id: front.id, host: hostname(), pid: process.pid, url: front.url, root: front.root, started_at: front.startedAt, last_seen: now, components })
    .onConflict((oc) => oc.column('id').doUpdateSet({ last_seen: now, components, url: front.url }))
    .execute();
}

export async function removeFront(db: Kysely<any>, id: string): Promise<void> {
  await db.deleteFrom('outageless_front').where('id', '=', id).execute();
}

function relate(
  components: Readonly<Record<string, FrontComponentCode>>,
  installed: ReadonlyMap<string, InstalledComponent> | undefined,
): Pick<FrontRecord, 'relation' | 'differences'> {
  const differences: { component: string; code: number | null; installed: number | null }[] = [];
  let behind = false;
  let ahead = false;
  const names = new Set([...Object.keys(components), ...(installed?.keys() ?? [])]);
  for (const name of [...names].sort()) {
    const code = components[name]?.version ?? null;
    const db = installed?.get(name)?.version ?? null;
    if (code === db) continue;
    differences.push({ component: name, code, installed: db });
    if (code !== null && (db === null || code > db)) ahead = true;
    if (db !== null && (code === null || code < db)) behind = true;
  }
  return { relation: ahead && behind ? 'mixed' : ahead ? 'leads' : behind ? 'trails' : 'matches', differences };
}

/**
 * Lists live fronts (seen within `staleAfterMs`) with how each relates to `installed`.
 * Rows of fronts long gone (killed without leaving) are deleted on the way.
 *
 * @example
 * ```ts
 * for (const front of await listFronts(db, installed, { staleAfterMs: 15_000 }))
 *   console.log(front.host, front.pid, front.relation)
 * ```
 */
export async function listFronts(
  db: Kysely<any>,
  installed: ReadonlyMap<string, InstalledComponent> | undefined,
  options: { staleAfterMs?: number } = {},
): Promise<FrontRecord[]> {
  const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_HEARTBEATS * DEFAULT_HEARTBEAT_MS;
  if (!(await tableExists(db, 'outageless_front'))) return [];
  const cutoff = new Date(Date.now() - staleAfterMs);
  await db.deleteFrom('outageless_front').where('last_seen', '<', new Date(Date.now() - Math.max(staleAfterMs * 20, 3_600_000))).execute();
  const rows = await db.selectFrom('outageless_front').selectAll().where('last_seen', '>=', cutoff).orderBy('started_at').execute();
  return rows.map((row) => {
    const components = (row.components ?? {}) as Record<string, FrontComponentCode>;
    return {
      id: row.id,
      host: row.host,
      pid: row.pid,
      url: row.url,
      root: row.root,
      startedAt: row.started_at,
      lastSeen: row.last_seen,
      components,
      ...relate(components, installed),
    };
  });
}
