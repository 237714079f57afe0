import { readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { discoverSite, type SiteCode } from '../component/discover.ts';
import { loadSchema } from '../component/files.ts';
import { importDefinitionFile } from '../component/load.ts';
import { nearestKey } from '../component/manifest.ts';
import { isConnectionLoss } from '../database/connection-loss.ts';
import { notifyStateChanged, type SiteDatabase } from '../database/open.ts';
import { errors, isOutagelessError } from '../errors.ts';
import { DEAD_EVENT_QUEUE, eventQueue, JOBS_SCHEMA, taskQueuePrefix } from '../jobs/names.ts';
import { readComponentSchemas, type RecordedSchema } from '../state/component-schema.ts';
import { appendLog, readInstalled, type InstalledComponent } from '../state/installed.ts';
import { ensureStateTables, tableExists } from '../state/tables.ts';
import { DEFAULT_HEARTBEAT_MS, STALE_AFTER_HEARTBEATS } from '../runtime/front-registry.ts';

/**
 * `outageless uninstall <component>` (Moodle's admin/plugins.php uninstall): once a plugin's
 * code is gone from disk, drop what it left in the database. That is the tables of its last
 * recorded schema (`outageless_component_schema`, written by the upgrade runner with each
 * install and upgrade), its state rows, its pg-boss queues and schedules, and its cache
 * revision, all in one transaction under the upgrade lock, plus an `uninstalled` row in the
 * upgrade log.
 *
 * A plugin's subplugins live inside its directory, so their code goes with it: they are
 * uninstalled together with their parent, in the same transaction.
 *
 * Refused, with nothing changed: core; a name that is not installed; code still on disk; an
 * on-disk component that depends on it; a live front that still runs its code; a table that
 * stays with a foreign key into one that would be dropped; a component installed before
 * tables were recorded.
 */

/** One component the uninstall removes. */
export interface UninstallTarget {
  readonly component: string;
  readonly version: number;
  /** Its parent, for a subplugin uninstalled with it. */
  readonly parent: string | null;
  /** Recorded tables that exist: these are dropped. */
  readonly tables: readonly string[];
  /** Recorded tables that no longer exist (dropped by hand): nothing to do. */
  readonly missingTables: readonly string[];
  /** Recorded tables another component now declares or records: kept. */
  readonly keptTables: readonly { readonly table: string; readonly owner: string }[];
}

/** What an uninstall will drop, shown before the operator confirms. */
export interface UninstallPlan {
  readonly component: string;
  /** The component first, then its installed subplugins. */
  readonly targets: readonly UninstallTarget[];
  /** pg-boss queues (events, tasks) of the targets that exist; their jobs and schedules go with them. */
  readonly queues: readonly string[];
  /** Dead-lettered events of the targets' observers. */
  readonly deadEvents: number;
}

export interface UninstallResult {
  readonly plan: UninstallPlan;
  readonly runId: string;
  readonly durationMs: number;
  /** State rows deleted, per `outageless_*` table (tables with none left out). */
  readonly stateRows: Readonly<Record<string, number>>;
}

export interface UninstallOptions {
  readonly database: SiteDatabase;
  /** The site root: its code is discovered here (a component on disk is refused). */
  readonly root: string;
  readonly component: string;
  /** Asked once with the plan, before anything is written; false cancels with nothing changed. */
  readonly confirm?: (plan: UninstallPlan) => Promise<boolean>;
}

/** State tables with a row per component (or several), deleted with it. */
const STATE_TABLES = [
  'outageless_component',
  'outageless_component_schema',
  'outageless_component_state',
  'outageless_owed_step',
  'outageless_owed_manual',
  'outageless_format',
  'outageless_background_migration',
  'outageless_deferred_task',
  'outageless_cache_revision',
] as const;

/**
 * Checks the uninstall and lists what it would drop. Never writes.
 *
 * @example
 * ```ts
 * const plan = await planUninstall(database.db, '/srv/lms', 'block_news')
 * plan.targets[0]?.tables // ['block_news_post', 'block_news_subscription']
 * ```
 */
export async function planUninstall(db: Kysely<any>, root: string, name: string): Promise<UninstallPlan> {
  if (name === 'core') throw errors.uninstallCore();
  const installed = (await readInstalled(db)) ?? new Map<string, InstalledComponent>();
  const row = installed.get(name);
  if (!row) {
    const names = [...installed.keys()].filter((component) => component !== 'core').sort();
    throw errors.componentNotInstalled(name, names, nearestKey(name, names));
  }
  const recorded = await readComponentSchemas(db);
  // Subplugins by their recorded parent: their code was inside the parent's directory.
  const members = [row, ...[...installed.values()].filter((other) => recorded.get(other.component)?.parent === name)];
  const memberNames = new Set(members.map((member) => member.component));

  const code = await discoverOrRefuse(root, memberNames);
  for (const member of members) {
    const onDisk = code.components.get(member.component);
    if (onDisk) throw errors.uninstallCodeOnDisk(member.component, relative(code.root, onDisk.dir) || '.');
  }
  for (const member of members) {
    if (!recorded.has(member.component)) throw errors.uninstallTablesUnrecorded(member.component, member.version);
  }
  const fronts = await liveFrontsRunning(db, memberNames);
  if (fronts.length > 0) throw errors.uninstallFrontRunsIt(name, fronts);

  const owners = await tableOwners(code, recorded, memberNames);
  const existing = await existingTables(db, members.flatMap((member) => recorded.get(member.component)!.tables));
  const targets: UninstallTarget[] = members.map((member) => {
    const tables = recorded.get(member.component)!.tables;
    return {
      component: member.component,
      version: member.version,
      parent: recorded.get(member.component)!.parent,
      tables: tables.filter((table) => existing.has(table) && !owners.has(table)),
      missingTables: tables.filter((table) => !existing.has(table) && !owners.has(table)),
      keptTables: tables.filter((table) => owners.has(table)).map((table) => ({ table, owner: owners.get(table)! })),
    };
  });

  const dropped = targets.flatMap((target) => target.tables);
  const references = await foreignKeysInto(db, dropped);
  if (references.length > 0) {
    throw errors.uninstallForeignKey(name, references.map((reference) => ({ ...reference, owner: owners.get(reference.table) })));
  }
  const jobs = await jobsOf(db, [...memberNames]);
  return { component: name, targets, queues: jobs.queues, deadEvents: jobs.deadEvents };
}

/**
 * Uninstalls a component whose code is gone: plans (refusing as {@link planUninstall} does),
 * asks `confirm`, takes the upgrade lock (`OUTAGELESS_ERR_UPGRADE_LOCKED`, exit 4, when
 * another upgrade runs), plans again under it, then drops everything in one transaction.
 *
 * @example
 * ```ts
 * const result = await runUninstall({ database, root: '/srv/lms', component: 'block_news', confirm: async () => true })
 * result.plan.targets.flatMap((t) => t.tables) // ['block_news_post', 'block_news_subscription']
 * ```
 */
export async function runUninstall(options: UninstallOptions): Promise<UninstallResult> {
  const { database, root, component } = options;
  const preview = await planUninstall(database.db, root, component);
  if (options.confirm && !(await options.confirm(preview))) throw errors.notConfirmed(`uninstall of ${component}`);

  // Online: the rest of the site keeps serving; fronts no longer run this component's code.
  let held = await database.upgradeLock.tryAcquire('online');
  if (!held) {
    const holder = await database.upgradeLock.holder();
    if (!holder) held = await database.upgradeLock.tryAcquire('online');
    if (!held) throw errors.upgradeLocked(holder);
  }
  const lock = held;
  const started = performance.now();
  const startedAt = new Date();
  try {
    // An upgrade may have finished while we asked: the plan under the lock is the truth.
    const plan = await planUninstall(database.db, root, component);
    await ensureStateTables(database.db);
    const names = plan.targets.map((target) => target.component);
    const stateRows: Record<string, number> = {};
    await database.db.transaction().execute(async (trx) => {
      const unguard = await lock.guard(trx);
      try {
        const tables = plan.targets.flatMap((target) => target.tables);
        // One statement, no CASCADE: foreign keys among the dropped tables are fine, any other
        // dependency (a view, a key added since the plan) fails it and rolls everything back.
        if (tables.length > 0) await sql`drop table ${sql.join(tables.map((table) => sql.id(table)))}`.execute(trx);
        for (const table of STATE_TABLES) {
          const { numDeletedRows } = await trx.deleteFrom(table).where('component', 'in', names).executeTakeFirst();
          if (numDeletedRows > 0n) stateRows[table] = Number(numDeletedRows);
        }
        await dropJobs(trx, names);
        for (const target of plan.targets) {
          await appendLog(trx, { runId: lock.runId, component: target.component, stepId: null, version: target.version, status: 'uninstalled', outage: null, startedAt, durationMs: performance.now() - started });
        }
        await notifyStateChanged(trx, `uninstalled:${component}`);
        await lock.verify(trx);
      } finally {
        unguard();
      }
    }).catch((error: unknown) => {
      // A lost connection stays itself: the CLI says to rerun, and nothing committed.
      if (isOutagelessError(error) || isConnectionLoss(error)) throw error;
      throw errors.uninstallFailed(component, error);
    });
    return { plan, runId: lock.runId, durationMs: performance.now() - started, stateRows };
  } finally {
    await lock.release();
  }
}

/**
 * The site's code. A component on disk that depends on one being uninstalled makes discovery
 * fail ("depends on X, which is not on disk"): that is the dependency refusal.
 */
async function discoverOrRefuse(root: string, members: ReadonlySet<string>): Promise<SiteCode> {
  try {
    return await discoverSite(root);
  } catch (error) {
    const field = isOutagelessError(error, errors.dependencyMissing.code) ? error.location.field : undefined;
    const dependency = field?.slice('dependencies.'.length);
    if (dependency !== undefined && members.has(dependency) && isOutagelessError(error)) {
      const first = { component: error.location.component ?? '?', file: error.location.file ?? '?' };
      const all = await dependentsOnDisk(root, members);
      throw errors.uninstallDependedOn(dependency, all.some((d) => d.component === first.component) ? all : [first, ...all]);
    }
    throw error;
  }
}

async function subdirectories(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.')).map((entry) => entry.name).sort();
}

/**
 * Every component on disk whose version.ts lists one of `members`: discovery stops at the first
 * one, and the refusal should name them all. Only read on that refusal, which is rare enough
 * for a plain walk of the plugin directories.
 */
async function dependentsOnDisk(rootDir: string, members: ReadonlySet<string>): Promise<{ component: string; file: string }[]> {
  const root = resolve(rootDir);
  const found: { component: string; file: string }[] = [];
  const visit = async (dir: string, name: string): Promise<void> => {
    const file = join(dir, 'version.ts');
    const loaded = await importDefinitionFile(file, name).catch(() => undefined);
    if (loaded?.kind !== 'loaded') return;
    const manifest = loaded.value as { dependencies?: Record<string, unknown>; subplugins?: Record<string, string> };
    if (Object.keys(manifest.dependencies ?? {}).some((name) => members.has(name))) found.push({ component: name, file: relative(root, file) });
    for (const [type, subdir] of Object.entries(manifest.subplugins ?? {})) {
      // Discovery refuses a subplugin directory outside its parent; never follow one here.
      if (typeof subdir !== 'string' || isAbsolute(subdir) || subdir.split(/[\\/]/).includes('..')) continue;
      for (const sub of await subdirectories(join(dir, subdir))) await visit(join(dir, subdir, sub), `${type}_${sub}`);
    }
  };
  await visit(join(root, 'core'), 'core');
  for (const type of await subdirectories(join(root, 'plugins'))) {
    for (const name of await subdirectories(join(root, 'plugins', type))) await visit(join(root, 'plugins', type, name), `${type}_${name}`);
  }
  return found;
}

/**
 * Live fronts whose code still has one of `components`: started before the code was removed,
 * they serve it against the tables an uninstall would drop. Read-only (listFronts also prunes
 * long-dead rows, which a refused uninstall must not do).
 */
async function liveFrontsRunning(db: Kysely<any>, components: ReadonlySet<string>): Promise<{ host: string; pid: number; url: string | null }[]> {
  if (!(await tableExists(db, 'outageless_front'))) return [];
  const cutoff = new Date(Date.now() - STALE_AFTER_HEARTBEATS * DEFAULT_HEARTBEAT_MS);
  const rows = await db.selectFrom('outageless_front').select(['host', 'pid', 'url', 'components']).where('last_seen', '>=', cutoff).orderBy('started_at').execute();
  return rows
    .filter((row) => Object.keys((row.components ?? {}) as Record<string, unknown>).some((component) => components.has(component)))
    .map((row) => ({ host: row.host, pid: row.pid, url: row.url }));
}

/** Tables some other component declares (on disk) or recorded, with that component: never dropped. */
async function tableOwners(code: SiteCode, recorded: ReadonlyMap<string, RecordedSchema>, members: ReadonlySet<string>): Promise<Map<string, string>> {
  const owners = new Map<string, string>();
  for (const schema of recorded.values()) {
    if (members.has(schema.component)) continue;
    for (const table of schema.tables) owners.set(table, schema.component);
  }
  for (const component of code.components.values()) {
    for (const table of Object.keys((await loadSchema(code, component)).tables)) owners.set(table, component.name);
  }
  return owners;
}

async function existingTables(db: Kysely<any>, tables: readonly string[]): Promise<Set<string>> {
  if (tables.length === 0) return new Set();
  const { rows } = await sql<{ name: string }>`
    select relname as name from pg_class
     where relnamespace = current_schema()::regnamespace and relkind in ('r', 'p') and relname = any(${tables}::text[])`.execute(db);
  return new Set(rows.map((row) => row.name));
}

/** Foreign keys of tables that stay, pointing into tables that would be dropped. */
async function foreignKeysInto(db: Kysely<any>, dropped: readonly string[]): Promise<{ constraint: string; table: string; references: string }[]> {
  if (dropped.length === 0) return [];
  const { rows } = await sql<{ constraint: string; table: string; references: string }>`
    select c.conname as constraint, s.relname as table, t.relname as references
      from pg_constraint c
      join pg_class s on s.oid = c.conrelid
      join pg_class t on t.oid = c.confrelid
     where c.contype = 'f' and t.relnamespace = current_schema()::regnamespace and t.relname = any(${dropped}::text[])
       and not (s.relnamespace = t.relnamespace and s.relname = any(${dropped}::text[]))
     order by s.relname, c.conname`.execute(db);
  return rows;
}

const JOB_TABLE = sql.table(`${JOBS_SCHEMA}.job`);
const QUEUE_TABLE = sql.table(`${JOBS_SCHEMA}.queue`);

async function jobsPresent(db: Kysely<any>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`select to_regclass(${`${JOBS_SCHEMA}.queue`}) is not null and to_regclass(${`${JOBS_SCHEMA}.job`}) is not null as present`.execute(db);
  return rows[0]?.present ?? false;
}

/** The components' pg-boss queues and dead-lettered events; none when pg-boss never ran on the site. */
async function jobsOf(db: Kysely<any>, components: readonly string[]): Promise<{ queues: string[]; deadEvents: number }> {
  if (!(await jobsPresent(db))) return { queues: [], deadEvents: 0 };
  const { rows } = await sql<{ name: string }>`
    select name from ${QUEUE_TABLE}
     where name = any(${components.map(eventQueue)}::text[])
        or exists (select 1 from unnest(${components.map(taskQueuePrefix)}::text[]) as p where starts_with(name, p))
     order by name`.execute(db);
  const { rows: dead } = await sql<{ n: number | string }>`
    select count(*) as n from ${JOB_TABLE} where name = ${DEAD_EVENT_QUEUE} and data->>'component' = any(${components}::text[])`.execute(db);
  return { queues: rows.map((row) => row.name), deadEvents: Number(dead[0]?.n ?? 0) };
}

/**
 * Deletes the components' queues the way pg-boss's own `deleteQueue` does (its jobs, or its
 * partition, then the queue; schedules cascade), under the same advisory lock, but inside
 * our transaction so it commits with the tables' drop. Then their dead-lettered events.
 */
async function dropJobs(trx: Kysely<any>, components: readonly string[]): Promise<void> {
  const { queues } = await jobsOf(trx, components);
  if (queues.length > 0) {
    await sql`select pg_advisory_xact_lock(('x' || encode(sha224((current_database() || ${`.pgboss.${JOBS_SCHEMA}delete-queue`})::bytea), 'hex'))::bit(64)::bigint)`.execute(trx);
    const { rows } = await sql<{ present: boolean }>`select to_regprocedure(${`${JOBS_SCHEMA}.delete_queue(text)`}) is not null as present`.execute(trx);
    for (const queue of queues) {
      if (rows[0]?.present) await sql`select ${sql.raw(JOBS_SCHEMA)}.delete_queue(${queue})`.execute(trx);
      else {
        await sql`delete from ${JOB_TABLE} where name = ${queue}`.execute(trx);
        await sql`delete from ${QUEUE_TABLE} where name = ${queue}`.execute(trx);
      }
    }
  }
  if (await jobsPresent(trx)) {
    await sql`delete from ${JOB_TABLE} where name = ${DEAD_EVENT_QUEUE} and data->>'component' = any(${components}::text[])`.execute(trx);
  }
}
