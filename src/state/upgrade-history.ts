import { sql, type Kysely } from 'kysely';
import type { UpgradeLock } from '../database/upgrade-lock.ts';
import { tableExists } from './tables.ts';

/**
 * Reads the upgrade history: the runs of outageless_upgrade_run, joined by run id with their
 * rows of outageless_upgrade_log (steps applied, skipped, failed, with durations), and their
 * recorded progress lines. Runs from before runs were recorded come from the log alone.
 * Read-only: `history` on a site that was never upgraded writes nothing.
 */

/** `running`: its process still holds the lock; `interrupted`: it never ended (its process died). */
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'nothing' | 'interrupted';

/** One row of outageless_upgrade_log: a step, or a component's install/upgrade as a whole. */
export interface RunLogEntry {
  readonly component: string;
  /** Null for the component's own row (`installed`, `upgraded`, `uninstalled`). */
  readonly step: string | null;
  readonly version: number;
  readonly status: string;
  readonly outage: string | null;
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly error: string | null;
}

/** What one run did to one component. */
export interface ComponentSummary {
  readonly component: string;
  /** `installed`, `upgraded`, `uninstalled` when its run got that far, else null. */
  readonly result: string | null;
  readonly version: number;
  readonly applied: { readonly count: number; readonly durationMs: number };
  readonly skipped: { readonly count: number };
  readonly failed: { readonly count: number; readonly durationMs: number };
  /** Its whole time in the run: its own row's duration, else the sum of its steps'. */
  readonly durationMs: number;
}

export interface UpgradeRunRecord {
  readonly runId: string;
  /** False for a run known from the upgrade log only (mode, phase and who are then unknown). */
  readonly recorded: boolean;
  readonly mode: string | null;
  readonly phase: string | null;
  readonly startedBy: string | null;
  readonly host: string | null;
  readonly pid: number | null;
  readonly startedAt: Date;
  readonly endedAt: Date | null;
  /** Null while it runs, or when it was interrupted. */
  readonly durationMs: number | null;
  readonly status: RunStatus;
  readonly error: { readonly code: string | null; readonly message: string } | null;
  readonly components: readonly ComponentSummary[];
  readonly log: readonly RunLogEntry[];
}

export interface RunEvent {
  readonly seq: number;
  readonly at: Date;
  readonly kind: string;
  readonly component: string | null;
  readonly message: string;
}

interface RunRow {
  run_id: string;
  mode: string;
  phase: string;
  started_by: string;
  host: string;
  pid: number;
  started_at: Date;
  ended_at: Date | null;
  outcome: string | null;
  error_code: string | null;
  error_message: string | null;
}

function summarize(log: readonly RunLogEntry[]): ComponentSummary[] {
  const order: string[] = [];
  const byComponent = new Map<string, RunLogEntry[]>();
  for (const entry of log) {
    let entries = byComponent.get(entry.component);
    if (!entries) {
      byComponent.set(entry.component, (entries = []));
      order.push(entry.component);
    }
    entries.push(entry);
  }
  return order.map((component) => {
    const entries = byComponent.get(component)!;
    const steps = entries.filter((entry) => entry.step !== null || entry.status === 'failed');
    const own = entries.findLast((entry) => entry.step === null && entry.status !== 'failed');
    const of = (status: string) => steps.filter((entry) => entry.status === status);
    const total = (list: readonly RunLogEntry[]) => list.reduce((sum, entry) => sum + entry.durationMs, 0);
    return {
      component,
      result: own?.status ?? null,
      version: Math.max(...entries.map((entry) => entry.version)),
      applied: { count: of('applied').length, durationMs: total(of('applied')) },
      skipped: { count: of('skipped').length },
      failed: { count: of('failed').length, durationMs: total(of('failed')) },
      durationMs: own?.durationMs ?? total(steps),
    };
  });
}

async function readLogOf(db: Kysely<any>, runIds: readonly string[]): Promise<Map<string, RunLogEntry[]>> {
  const byRun = new Map<string, RunLogEntry[]>();
  if (runIds.length === 0) return byRun;
  const rows = await db.selectFrom('outageless_upgrade_log').selectAll().where('run_id', 'in', [...runIds]).orderBy('id').execute();
  for (const row of rows) {
    let entries = byRun.get(row.run_id);
    if (!entries) byRun.set(row.run_id, (entries = []));
    entries.push({
      component: row.component,
      step: row.step_id,
      version: Number(row.version),
      status: row.status,
      outage: row.outage,
      startedAt: row.started_at,
      durationMs: Number(row.duration_ms),
      error: row.error,
    });
  }
  return byRun;
}

async function assemble(db: Kysely<any>, rows: readonly RunRow[], legacy: readonly { run_id: string }[], lock: UpgradeLock | undefined): Promise<UpgradeRunRecord[]> {
  const logs = await readLogOf(db, [...rows.map((row) => row.run_id), ...legacy.map((row) => row.run_id)]);
  const open = rows.filter((row) => row.outcome === null).map((row) => row.run_id);
  // Without the lock to ask, an open run counts as running.
  const live = lock ? await lock.liveRuns(open) : new Set(open);
  const runs: UpgradeRunRecord[] = rows.map((row) => {
    const log = logs.get(row.run_id) ?? [];
    const status: RunStatus = row.outcome === null ? (live.has(row.run_id) ? 'running' : 'interrupted') : (row.outcome as RunStatus);
    return {
      runId: row.run_id,
      recorded: true,
      mode: row.mode,
      phase: row.phase,
      startedBy: row.started_by,
      host: row.host,
      pid: Number(row.pid),
      startedAt: row.started_at,
      endedAt: row.ended_at,
      durationMs: row.ended_at ? row.ended_at.getTime() - row.started_at.getTime() : null,
      status,
      error: row.error_message === null ? null : { code: row.error_code, message: row.error_message },
      components: summarize(log),
      log,
    };
  });
  for (const { run_id: runId } of legacy) {
    const log = logs.get(runId) ?? [];
    if (log.length === 0) continue;
    const start = Math.min(...log.map((entry) => entry.startedAt.getTime()));
    const end = Math.max(...log.map((entry) => entry.startedAt.getTime() + entry.durationMs));
    const failed = log.findLast((entry) => entry.status === 'failed');
    runs.push({
      runId, recorded: false, mode: null, phase: null, startedBy: null, host: null, pid: null,
      startedAt: new Date(start), endedAt: new Date(end), durationMs: end - start,
      status: failed ? 'failed' : 'succeeded',
      error: failed?.error ? { code: null, message: failed.error } : null,
      components: summarize(log),
      log,
    });
  }
  return runs.sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime());
}

export interface ReadRunsOptions {
  /** The newest this many runs (default 20). */
  readonly limit?: number;
  /** Tells a running run from one whose process died; without it every open run counts as running. */
  readonly lock?: UpgradeLock;
}

/**
 * The newest runs, newest first, each with its per-component summary and log rows.
 *
 * @example
 * ```ts
 * const [last] = await readUpgradeRuns(database.db, { limit: 1, lock: database.upgradeLock })
 * if (last?.status === 'failed') console.log(last.error?.code, last.components)
 * ```
 */
export async function readUpgradeRuns(db: Kysely<any>, options: ReadRunsOptions = {}): Promise<UpgradeRunRecord[]> {
  const limit = options.limit ?? 20;
  if (!(await tableExists(db, 'outageless_upgrade_log'))) return [];
  const recorded = await tableExists(db, 'outageless_upgrade_run');
  const rows: RunRow[] = recorded ? await db.selectFrom('outageless_upgrade_run').selectAll().orderBy('started_at', 'desc').limit(limit).execute() as RunRow[] : [];
  // Runs of the log with no row of their own: before runs were recorded, or not runs of the runner.
  const { rows: legacy } = await sql<{ run_id: string }>`
    select run_id from outageless_upgrade_log l
     where ${recorded ? sql`not exists (select 1 from outageless_upgrade_run r where r.run_id = l.run_id)` : sql`true`}
     group by run_id order by min(started_at) desc limit ${limit}`.execute(db);
  return (await assemble(db, rows, legacy, options.lock)).slice(0, limit);
}

/** What a run id (or a prefix of one) names. */
export type RunLookup =
  | { readonly kind: 'found'; readonly run: UpgradeRunRecord }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ambiguous'; readonly matches: readonly string[] };

/**
 * One run by its id, or by a unique prefix of it (`history` shows the first 8 characters).
 *
 * @example
 * ```ts
 * const found = await findUpgradeRun(database.db, '6f1c2a3b', { lock: database.upgradeLock })
 * if (found.kind === 'found') console.log(found.run.status)
 * ```
 */
export async function findUpgradeRun(db: Kysely<any>, idOrPrefix: string, options: { readonly lock?: UpgradeLock } = {}): Promise<RunLookup> {
  if (!(await tableExists(db, 'outageless_upgrade_log'))) return { kind: 'unknown' };
  const recorded = await tableExists(db, 'outageless_upgrade_run');
  const pattern = `${idOrPrefix.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
  const { rows: ids } = await sql<{ run_id: string }>`
    select run_id from outageless_upgrade_log where run_id like ${pattern}
    ${recorded ? sql`union select run_id from outageless_upgrade_run where run_id like ${pattern}` : sql``}`.execute(db);
  const exact = ids.find((row) => row.run_id === idOrPrefix);
  const chosen = exact ? [exact.run_id] : ids.map((row) => row.run_id);
  if (chosen.length === 0) return { kind: 'unknown' };
  if (chosen.length > 1) return { kind: 'ambiguous', matches: chosen.sort() };
  const runId = chosen[0]!;
  const rows: RunRow[] = recorded ? await db.selectFrom('outageless_upgrade_run').selectAll().where('run_id', '=', runId).execute() as RunRow[] : [];
  const [run] = await assemble(db, rows, rows.length > 0 ? [] : [{ run_id: runId }], options.lock);
  return run ? { kind: 'found', run } : { kind: 'unknown' };
}

/**
 * The run that holds the upgrade lock now, if it is recorded (a run of any process).
 *
 * @example
 * ```ts
 * const running = await readLiveRun(front.database.autocommit, front.database.upgradeLock)
 * if (running) console.log(`${running.mode} upgrade by ${running.startedBy} on ${running.host}`)
 * ```
 */
export async function readLiveRun(db: Kysely<any>, lock: UpgradeLock): Promise<UpgradeRunRecord | undefined> {
  if (!(await tableExists(db, 'outageless_upgrade_run'))) return undefined;
  const rows: RunRow[] = await db.selectFrom('outageless_upgrade_run').selectAll().where('outcome', 'is', null).orderBy('started_at', 'desc').limit(20).execute() as RunRow[];
  const live = await lock.liveRuns(rows.map((row) => row.run_id));
  const row = rows.find((candidate) => live.has(candidate.run_id));
  if (!row) return undefined;
  // Known live already: without a lock to ask again, an open row counts as running.
  return (await assemble(db, [row], [], undefined))[0];
}

/**
 * A run's recorded progress lines, oldest first; `afterSeq` for only the newer ones (polling).
 * Runs older than the newest 50 have none left (their row and log stay).
 *
 * @example
 * ```ts
 * const lines = (await readRunEvents(database.db, run.runId)).map((event) => event.message)
 * ```
 */
export async function readRunEvents(db: Kysely<any>, runId: string, options: { readonly afterSeq?: number } = {}): Promise<RunEvent[]> {
  if (!(await tableExists(db, 'outageless_upgrade_event'))) return [];
  const rows = await db.selectFrom('outageless_upgrade_event').selectAll()
    .where('run_id', '=', runId).where('seq', '>', options.afterSeq ?? 0).orderBy('seq').execute();
  return rows.map((row) => ({ seq: Number(row.seq), at: row.at, kind: row.kind, component: row.component, message: row.message }));
}

/**
 * A step or run duration as history shows it: `840 ms`, `2.35 s`; `—` when unknown (a run still
 * running or interrupted).
 *
 * @example
 * ```ts
 * formatRunDuration(2350) // => '2.35 s'
 * ```
 */
export function formatRunDuration(value: number | null): string {
  return value === null ? '—' : value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`;
}

/** A run as `history --json` and the progress endpoint give it (dates as ISO strings). */
export function runToJson(run: UpgradeRunRecord): Record<string, unknown> {
  return {
    runId: run.runId,
    recorded: run.recorded,
    mode: run.mode,
    phase: run.phase,
    startedBy: run.startedBy,
    host: run.host,
    pid: run.pid,
    startedAt: run.startedAt.toISOString(),
    endedAt: run.endedAt?.toISOString() ?? null,
    durationMs: run.durationMs,
    status: run.status,
    error: run.error,
    components: run.components,
    steps: run.log.map((entry) => ({ ...entry, startedAt: entry.startedAt.toISOString() })),
  };
}
