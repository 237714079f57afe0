import type { Kysely } from 'kysely';
import type { OutageClass } from '../component/definitions.ts';
import { stateTablesExist } from './tables.ts';

/** What the database says is installed for one component. */
export interface InstalledComponent {
  readonly component: string;
  readonly version: number;
  readonly release: string | null;
  readonly codeIncrement: string | null;
  readonly definitionsHash: string;
  readonly definitions: Readonly<Record<string, string>>;
  readonly updatedAt: Date;
}

/**
 * Reads the installed state, or undefined when the site is not installed. Never writes:
 * `status` and `--is-pending` on an empty database must leave it empty.
 */
export async function readInstalled(db: Kysely<any>): Promise<ReadonlyMap<string, InstalledComponent> | undefined> {
  if (!(await stateTablesExist(db))) return undefined;
  const rows = await db.selectFrom('outageless_component').selectAll().execute();
  if (rows.length === 0) return undefined;
  return new Map(
    rows.map((row) => [
      row.component as string,
      {
        component: row.component,
        version: Number(row.version),
        release: row.release,
        codeIncrement: row.code_increment,
        definitionsHash: row.definitions_hash,
        definitions: row.definitions ?? {},
        updatedAt: row.updated_at,
      },
    ]),
  );
}

export interface InstalledRecord {
  readonly component: string;
  readonly version: number;
  readonly release?: string | undefined;
  readonly codeIncrement?: string | undefined;
  readonly definitionsHash: string;
  readonly definitions: Readonly<Record<string, string>>;
}

/** Writes a component's full installed record (after install or its last step). */
export async function writeInstalled(db: Kysely<any>, record: InstalledRecord): Promise<void> {
  const values = {
    version: record.version,
    release: record.release ?? null,
    code_increment: record.codeIncrement ?? null,
    definitions_hash: record.definitionsHash,
    definitions: JSON.stringify(record.definitions),
    updated_at: new Date(),
  };
  await db
    .insertInto('outageless_component')
    .values({ component: record.component, ...values })
    .onConflict((oc) => oc.column('component').doUpdateSet(values))
    .execute();
}

/** Moves a component's version to a step's savepoint, leaving the rest of its record alone. */
export async function writeSavepoint(db: Kysely<any>, component: string, version: number): Promise<void> {
  await db.updateTable('outageless_component').set({ version, updated_at: new Date() }).where('component', '=', component).execute();
}

/** `uninstalled`: `outageless uninstall` dropped the component (its earlier rows stay as history). */
export type LogStatus = 'installed' | 'applied' | 'skipped' | 'failed' | 'upgraded' | 'uninstalled';

export interface LogEntry {
  readonly runId: string;
  readonly component: string;
  readonly stepId: string | null;
  readonly version: number;
  readonly status: LogStatus;
  readonly outage: OutageClass | null;
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly error?: string;
}

export async function appendLog(db: Kysely<any>, entry: LogEntry): Promise<void> {
  await db
    .insertInto('outageless_upgrade_log')
    .values({
      run_id: entry.runId,
      component: entry.component,
      step_id: entry.stepId,
      version: entry.version,
      status: entry.status,
      outage: entry.outage,
      started_at: entry.startedAt,
      duration_ms: Math.round(entry.durationMs),
      error: entry.error ?? null,
    })
    .execute();
}

export interface LogRow extends LogEntry {
  readonly id: number;
}

/** The upgrade log, oldest first. */
export async function readLog(db: Kysely<any>): Promise<LogRow[]> {
  if (!(await stateTablesExist(db))) return [];
  const rows = await db.selectFrom('outageless_upgrade_log').selectAll().orderBy('id').execute();
  return rows.map((row) => ({
    id: Number(row.id),
    runId: row.run_id,
    component: row.component,
    stepId: row.step_id,
    version: Number(row.version),
    status: row.status,
    outage: row.outage,
    startedAt: row.started_at,
    durationMs: row.duration_ms,
    ...(row.error ? { error: row.error } : {}),
  }));
}

/**
 * Every applied step id, per component, in one query (planning needs all of them). Steps
 * applied before a component's uninstall do not count: a reinstall starts it from scratch.
 */
export async function readAppliedSteps(db: Kysely<any>): Promise<ReadonlyMap<string, ReadonlySet<string>>> {
  const applied = new Map<string, Set<string>>();
  if (!(await stateTablesExist(db))) return applied;
  const rows = await db.selectFrom('outageless_upgrade_log').select(['component', 'step_id', 'status']).where('status', 'in', ['applied', 'uninstalled']).orderBy('id').execute();
  for (const row of rows) {
    if (row.status === 'uninstalled') {
      applied.delete(row.component);
      continue;
    }
    let ids = applied.get(row.component);
    if (!ids) applied.set(row.component, (ids = new Set()));
    ids.add(row.step_id);
  }
  return applied;
}
