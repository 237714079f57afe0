import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { OutageClass, StepContext, StepPhase } from '../component/definitions.ts';
import type { SiteCode } from '../component/discover.ts';
import { loadSchema } from '../component/files.ts';
import type { SiteDatabase } from '../database/open.ts';
import { errors, ExitCode, isOutagelessError, type OutagelessError } from '../errors.ts';
import { readPlan } from '../plan/read.ts';
import { installSchema } from '../schema/ddl.ts';
import type { SchemaDefinition } from '../schema/definition.ts';
import { diffSchema, type SchemaDifference } from '../schema/diff.ts';
import { introspectSchema, type LiveSchema } from '../schema/introspect.ts';
import { DEFAULT_LOCK_TIMEOUT_MS, setLockTimeout } from '../schema/lock-safety.ts';
import { createSchemaHelpers } from '../schema/postgres-helpers.ts';
import { isStateTable } from '../state/tables.ts';
import { analyzeStep, moreDangerous, type ObservedLock, type ObservedReason, type ObservedStatement, type Rewrite, type TableSize } from './analyze.ts';
import { cloneSchema, quoteIdent, type ClonedTable } from './clone.ts';
import { rehearseErrors } from './errors.ts';
import { LockMonitor, lockRank, OutsideScratchError, outsideScratch, StatementRecorder, type LockMode } from './observe.ts';

/**
 * `outageless rehearse`: runs the pending upgrade steps on a scratch copy of the live schema
 * (a scratch schema in the same database, cloned from the catalog and filled with generated
 * rows), watches what each step really does (statements, table locks and how long they are
 * held, table rewrites, rows touched), and compares the outage class it observes with the one
 * the step declares. Then it checks that the steps produce what `db/schema.ts` declares.
 *
 * The live schema is only read. The scratch schema is dropped afterwards, also on error.
 */

/**
 * Rows generated per table of the scratch copy unless `rows` says otherwise. Below about
 * this many, a DDL statement's fixed cost (catalog, files) dominates its time, and scaling it
 * to a large live table overstates it tenfold; 10,000 rows keep the estimate within about
 * 1.5× for index builds while the copy still takes a second or two.
 */
export const DEFAULT_REHEARSAL_ROWS = 10_000;

/**
 * The lock budget unless `lockBudgetMs` says otherwise: a lock that blocks writes, held longer
 * than this at live size, is an outage. It is the helpers' default lock timeout, the longest
 * an online step may make traffic wait.
 */
export const DEFAULT_LOCK_BUDGET_MS = DEFAULT_LOCK_TIMEOUT_MS;

export interface RehearseOptions {
  /** The live site database (PostgreSQL): read for the plan, the catalog and the table sizes. */
  readonly database: SiteDatabase;
  /** Connection string of the same database, for the step connection and the lock monitor. */
  readonly url: string;
  readonly code: SiteCode;
  /** Generated rows per table; 0 checks classes and schema without timing. Default {@link DEFAULT_REHEARSAL_ROWS}. */
  readonly rows?: number;
  /** Default {@link DEFAULT_LOCK_BUDGET_MS}. */
  readonly lockBudgetMs?: number;
  /** `lock_timeout` of the steps and `ctx.schema`, as `upgrade --lock-timeout` would set it. */
  readonly lockTimeoutMs?: number;
  /** One line per phase of the rehearsal, for a progress display. */
  readonly onProgress?: (message: string) => void;
}

export interface StepRehearsal {
  readonly component: string;
  readonly id: string;
  readonly version: number;
  readonly description: string | undefined;
  readonly phase: StepPhase | 'background' | 'manual';
  readonly transaction: boolean;
  /** How `upgrade --no-maintenance` runs it, and so how it was rehearsed. */
  readonly runs: 'online' | 'transaction' | 'no-transaction';
  /** The class the step's author wrote (undeclared means `site`). */
  readonly declared: OutageClass;
  /** The class the plan gives it after its own dry-run verification. */
  readonly planned: OutageClass;
  /** What the rehearsal saw; `none` for a step skipped as already applied. */
  readonly observed: OutageClass;
  readonly status: 'ran' | 'failed' | 'skipped';
  readonly durationMs: number;
  /** The step's time with its row-dependent statements scaled to the live table sizes. */
  readonly scaledDurationMs: number;
  readonly scaled: boolean;
  readonly rowsTouched: number;
  readonly reasons: readonly ObservedReason[];
  readonly statements: readonly ObservedStatement[];
  readonly locks: readonly ObservedLock[];
  readonly rewrites: readonly Rewrite[];
  /** Set when the observed class is stronger than the declared one. */
  readonly warning: string | undefined;
  /** `ctx.log` lines and helper retries. */
  readonly log: readonly string[];
}

export interface RehearsalReport {
  readonly liveSchema: string;
  readonly scratchSchema: string;
  readonly rows: number;
  readonly lockBudgetMs: number;
  /** Round trip of a trivial statement, the part of each duration that is not scaled. */
  readonly baselineMs: number;
  readonly tables: readonly ClonedTable[];
  /** New components whose tables were created from `db/schema.ts` (install is additive). */
  readonly installed: readonly string[];
  readonly steps: readonly StepRehearsal[];
  readonly schema: {
    /** False when the steps did not run to the end (a step failed): nothing was compared. */
    readonly compared: boolean;
    readonly matches: boolean;
    /** Differences between the scratch copy after the steps and the declared schemas. */
    readonly differences: readonly SchemaDifference[];
    /** Differences the live schema already had (in components without pending steps). */
    readonly drift: readonly SchemaDifference[];
  };
  readonly warnings: readonly string[];
  readonly failure: OutagelessError | undefined;
  /** 0 agrees, 1 a step failed, 2 a step is more dangerous than declared or the schema differs. */
  readonly exitCode: 0 | 1 | 2;
}

// int8 reads as a number when it fits, as it does on the site's own connections.
const INT8_OID = 20;
const NUMERIC_SAFE = (value: string) => {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
};

const SCRATCH_PREFIX = 'outageless_rehearse_';
const SYSTEM_SCHEMA = /^(pg_catalog|information_schema|pg_toast|pg_temp_\d+|pg_toast_temp_\d+)$/;

async function backendPid(db: Kysely<any>): Promise<number> {
  const { rows } = await sql<{ pid: number }>`select pg_catalog.pg_backend_pid() as pid`.execute(db);
  return Number(rows[0]!.pid);
}

async function relfilenodes(db: Kysely<any>): Promise<Map<string, number>> {
  const { rows } = await sql<{ name: string; node: number }>`
    select c.relname::text as name, c.relfilenode::int8 as node from pg_catalog.pg_class c
    where c.relnamespace = pg_catalog.current_schema()::regnamespace and c.relkind in ('r', 'p')`.execute(db);
  return new Map(rows.map((row) => [row.name, Number(row.node)]));
}

async function heldLocks(db: Kysely<any>): Promise<{ schema: string; table: string; mode: LockMode }[]> {
  const { rows } = await sql<{ schema: string; table: string; mode: LockMode }>`
    select n.nspname::text as schema, c.relname::text as table, l.mode
    from pg_catalog.pg_locks l
      join pg_catalog.pg_class c on c.oid = l.relation
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where l.pid = pg_catalog.pg_backend_pid() and l.locktype = 'relation' and l.granted and c.relkind in ('r', 'p')`.execute(db);
  return rows;
}

/**
 * Drops scratch schemas of rehearsals whose backend is gone (a killed `rehearse`). A running
 * rehearsal's backend is alive, so its schema is left alone.
 */
async function dropAbandonedScratchSchemas(db: Kysely<any>): Promise<void> {
  const { rows } = await sql<{ name: string; comment: string | null }>`
    select n.nspname::text as name, pg_catalog.obj_description(n.oid, 'pg_namespace') as comment
    from pg_catalog.pg_namespace n where n.nspname like ${`${SCRATCH_PREFIX}%`}`.execute(db);
  for (const row of rows) {
    const pid = /backend (\d+)/.exec(row.comment ?? '')?.[1];
    if (pid === undefined) continue;
    const { rows: alive } = await sql`select 1 from pg_catalog.pg_stat_activity where pid = ${Number(pid)}`.execute(db);
    if (alive.length === 0) await sql`drop schema if exists ${sql.id(row.name)} cascade`.execute(db);
  }
}

function indexTables(schema: LiveSchema): Map<string, string> {
  const map = new Map<string, string>();
  for (const table of Object.values(schema.tables)) {
    for (const index of table.indexes) map.set(index.name, table.name);
    if (table.primaryKey) map.set(table.primaryKey.name, table.name);
  }
  return map;
}

/** The first error in `error`'s cause chain that passes `test`. */
function findCause<T>(error: unknown, test: (cause: unknown) => cause is T): T | undefined {
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    if (test(current)) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/**
 * Rehearses the pending upgrade of a PostgreSQL site on a scratch copy of its schema.
 *
 * @example
 * ```ts
 * const database = await openDatabase(url)
 * const report = await rehearse({ database, url, code: await discoverSite('/srv/lms'), rows: 1000 })
 * for (const step of report.steps) console.log(step.id, step.declared, step.observed, step.warning ?? '')
 * process.exitCode = report.exitCode
 * ```
 */
export async function rehearse(options: RehearseOptions): Promise<RehearsalReport> {
  const { database, code } = options;
  const rows = options.rows ?? DEFAULT_REHEARSAL_ROWS;
  const lockBudgetMs = options.lockBudgetMs ?? DEFAULT_LOCK_BUDGET_MS;
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const progress = options.onProgress ?? (() => {});
  if (database.kind !== 'postgres') throw rehearseErrors.needsPostgres(database.displayUrl);

  const { plan } = await readPlan(database.db, { code });
  if (!plan.siteInstalled) throw errors.notInstalled(database.displayUrl);
  const declared = new Map<string, SchemaDefinition>();
  for (const component of code.components.values()) declared.set(component.name, await loadSchema(code, component));
  const owners = new Map<string, string>();
  for (const [component, schema] of declared) for (const table of Object.keys(schema.tables)) owners.set(table, component);
  const referencedBy = new Map<string, Set<string>>();
  for (const [component, schema] of declared) {
    for (const definition of Object.values(schema.tables)) {
      for (const foreignKey of definition.foreignKeys ?? []) {
        const users = referencedBy.get(foreignKey.references.table) ?? new Set<string>();
        users.add(component);
        referencedBy.set(foreignKey.references.table, users);
      }
    }
  }
  const outageFor = (table: string, stepComponent: string): OutageClass => {
    const owner = owners.get(table) ?? stepComponent;
    if (owner === 'core') return 'site';
    const others = [...(referencedBy.get(table) ?? [])].filter((component) => component !== owner);
    return others.length > 0 ? 'site' : 'component';
  };

  await dropAbandonedScratchSchemas(database.db);
  const scratch = `${SCRATCH_PREFIX}${randomBytes(6).toString('hex')}`;
  const recorder = new StatementRecorder();
  // One connection for everything the steps do, so pg_locks of one backend is the whole story.
  // Its search path is the scratch schema, where the helpers and unqualified SQL resolve.
  const pool = new pg.Pool({
    connectionString: options.url,
    max: 1,
    idleTimeoutMillis: 0,
    connectionTimeoutMillis: 30_000,
    options: `-c search_path=${scratch}`,
    application_name: 'outageless-rehearse',
  });
  pool.on('error', () => {});
  // While a step runs, a statement that names the live schema is refused before it is sent:
  // an online step runs outside a transaction, so afterwards would be too late.
  const guard = { liveSchema: undefined as string | undefined };
  pool.on('connect', (client) => {
    client.setTypeParser(INT8_OID, NUMERIC_SAFE);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const first = args[0];
      const text = typeof first === 'string' ? first : (first as { text?: unknown } | undefined)?.text;
      const relation = guard.liveSchema !== undefined && typeof text === 'string' ? outsideScratch(text, guard.liveSchema, scratch) : undefined;
      if (relation !== undefined) return Promise.reject(new OutsideScratchError(relation, text as string));
      return query(...args);
    };
  });
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }), log: recorder.logger, plugins: [recorder.plugin] });
  let monitor: LockMonitor | undefined;
  let created = false;
  try {
    await sql`create schema ${sql.id(scratch)}`.execute(db);
    created = true;
    await sql.raw(`comment on schema ${quoteIdent(scratch)} is 'outageless rehearse scratch copy, backend ${await backendPid(db)}'`).execute(db);
    monitor = await LockMonitor.connect(options.url);

    progress(`cloning the live schema into ${scratch} with ${rows} generated rows per table`);
    const clone = await cloneSchema(database.db, db, { rows, exclude: isStateTable });
    const sizes = new Map<string, TableSize>(clone.tables.map((table) => [table.name, { liveRows: table.liveRows, scratchRows: table.scratchRows }]));

    recorder.recording = true;
    for (let i = 0; i < 7; i++) await sql`select 1`.execute(db);
    recorder.recording = false;
    const baselineMs = median(recorder.take().map((statement) => statement.durationMs));

    const drift = await diffSchema(db, declared, { exclude: isStateTable });
    // What the installed release reads: the online helpers judge breaking changes against it.
    const oldSchema = await introspectSchema(db, { exclude: isStateTable });

    const installed: string[] = [];
    for (const item of plan.pending) {
      if (item.action !== 'install') continue;
      progress(`creating the tables of new component ${item.component} from its db/schema.ts`);
      await db.transaction().execute((trx) => installSchema(trx, declared.get(item.component)!));
      installed.push(item.component);
    }

    const steps: StepRehearsal[] = [];
    let failure: OutagelessError | undefined;
    outer: for (const item of plan.pending) {
      if (item.action !== 'upgrade') continue;
      const component = item.component;
      const file = join(item.code!.versionFile, '..', 'db', 'upgrade.ts');
      for (const step of item.steps) {
        if (step.step.phase === 'background') {
          // Worked after the upgrade in short batches of their own: nothing of the window to observe.
          steps.push({ component, id: step.id, version: step.version, description: step.description, phase: 'background', transaction: false, runs: 'no-transaction', declared: 'none', planned: 'none', observed: 'none', status: 'skipped', durationMs: 0, scaledDurationMs: 0, scaled: true, rowsTouched: 0, reasons: [], statements: [], locks: [], rewrites: [], warning: undefined, log: ['background migration: queued by the upgrade and worked after it in batches; not rehearsed'] });
          continue;
        }
        if (step.step.phase === 'manual') {
          // Never run by the upgrade: an operator runs it later with `outageless manual run`.
          steps.push({ component, id: step.id, version: step.version, description: step.description, phase: 'manual', transaction: true, runs: 'transaction', declared: 'none', planned: 'none', observed: 'none', status: 'skipped', durationMs: 0, scaledDurationMs: 0, scaled: true, rowsTouched: 0, reasons: [], statements: [], locks: [], rewrites: [], warning: undefined, log: ['manual action: owed by the upgrade, run later by `outageless manual run`; not rehearsed'] });
          continue;
        }
        const run = step.step;
        const base = {
          component,
          id: step.id,
          version: step.version,
          description: step.description,
          phase: step.phase,
          transaction: step.transaction,
          // The same choice as the runner's for an online (--no-maintenance) run.
          runs: step.outage === 'none' && run.transaction !== true ? 'online' : step.transaction ? 'transaction' : 'no-transaction',
          declared: step.declaredOutage,
          planned: step.outage,
        } as const;
        if (step.alreadyApplied) {
          steps.push({ ...base, observed: 'none', status: 'skipped', durationMs: 0, scaledDurationMs: 0, scaled: true, rowsTouched: 0, reasons: [], statements: [], locks: [], rewrites: [], warning: undefined, log: ['already applied under another version: skipped'] });
          continue;
        }
        progress(`${component}: step ${step.id}`);
        const before = await introspectSchema(db, { exclude: isStateTable });
        const nodesBefore = await relfilenodes(db);
        const pid = await backendPid(db);
        const log: string[] = [];
        const context = (executor: Kysely<any>, online: boolean): StepContext => ({
          db: executor,
          component,
          schema: createSchemaHelpers(executor, {
            lockTimeoutMs,
            // As the runner: a post step runs once no old front is left, so breaking is allowed.
            ...(online && step.phase !== 'post' ? { online: { component, step: step.id, oldSchema } } : {}),
            onRetry: (what, attempt) => log.push(`lock timeout on ${what}: retry ${attempt}`),
          }),
          log: (message) => log.push(message),
        });

        let heldAtCommit: { table: string; mode: LockMode }[] = [];
        let error: unknown;
        monitor.start(pid);
        guard.liveSchema = clone.liveSchema;
        recorder.recording = true;
        const startMs = performance.now();
        try {
          if (base.runs === 'online') {
            // As the runner does it: one connection under the short lock timeout, each helper
            // call a short transaction of its own, and breaking helpers refuse.
            await db.connection().execute(async (connection) => {
              await setLockTimeout(connection, `${lockTimeoutMs}ms`, false);
              await run.run(context(connection, true));
            });
          } else if (base.runs === 'transaction') {
            await db.transaction().execute(async (trx) => {
              await setLockTimeout(trx, `${lockTimeoutMs}ms`, true);
              await run.run(context(trx, false));
              // Locks are held until commit: what is held now was held for the rest of the step.
              recorder.recording = false;
              const held = await heldLocks(trx);
              recorder.recording = true;
              const outside = held.filter((lock) => lock.schema !== scratch && !SYSTEM_SCHEMA.test(lock.schema) && lockRank(lock.mode) >= lockRank('RowExclusiveLock'));
              if (outside.length > 0) throw rehearseErrors.liveTouched(component, step.id, file, outside.map((lock) => `${lock.schema}.${lock.table} (${lock.mode})`), 'rolled-back');
              heldAtCommit = held.filter((lock) => lock.schema === scratch);
            });
          } else {
            await run.run(context(db, false));
          }
        } catch (caught) {
          error = caught;
        }
        const endMs = performance.now();
        recorder.recording = false;
        guard.liveSchema = undefined;
        const samples = await monitor.stop();
        const statements = recorder.take();

        const after = error === undefined ? await introspectSchema(db, { exclude: isStateTable }) : before;
        const nodesAfter = error === undefined ? await relfilenodes(db) : nodesBefore;
        const observation = analyzeStep(
          {
            component,
            phase: step.phase === 'background' || step.phase === 'manual' ? 'main' : step.phase,
            startMs,
            endMs,
            statements,
            samples,
            sampleIntervalMs: monitor.intervalMs,
            heldAtCommit,
            before,
            after,
            relfilenodesBefore: nodesBefore,
            relfilenodesAfter: nodesAfter,
            indexTables: indexTables(before),
            scratchSchema: scratch,
          },
          { sizes, lockBudgetMs, baselineMs, outageFor },
        );
        const outside = [
          ...observation.liveWrites,
          ...samples
            .filter((sample) => sample.schema !== scratch && !SYSTEM_SCHEMA.test(sample.schema) && lockRank(sample.mode) >= lockRank('RowExclusiveLock'))
            .map((sample) => `${sample.schema}.${sample.table} (${sample.mode})`),
        ];
        if (error === undefined && outside.length > 0) error = rehearseErrors.liveTouched(component, step.id, file, [...new Set(outside)], 'ran');
        const refused = findCause(error, (cause): cause is OutsideScratchError => cause instanceof OutsideScratchError);
        if (refused) error = rehearseErrors.liveTouched(component, step.id, file, [refused.relation], 'refused');

        const warning = moreDangerous(observation.observed, step.declaredOutage)
          ? `${component} step ${step.id} declares outage ${step.declaredOutage}${step.outage === step.declaredOutage ? '' : ` (the plan raises it to ${step.outage})`} but the rehearsal observed ${observation.observed}: ${observation.reasons
              .filter((reason) => reason.outage === observation.observed)
              .map((reason) => reason.message)
              .join(' ')}`
          : undefined;
        steps.push({
          ...base,
          observed: observation.observed,
          status: error === undefined ? 'ran' : 'failed',
          durationMs: Math.round((endMs - startMs) * 10) / 10,
          scaledDurationMs: observation.scaledDurationMs,
          scaled: observation.scaled,
          rowsTouched: observation.rowsTouched,
          reasons: observation.reasons,
          statements: observation.statements,
          locks: observation.locks,
          rewrites: observation.rewrites,
          warning,
          log,
        });
        if (error !== undefined) {
          if (isOutagelessError(error, rehearseErrors.liveTouched.code)) failure = error;
          else if (error instanceof Error && /timeout exceeded when trying to connect/i.test(error.message)) failure = rehearseErrors.connectionTimeout(component, step.id, file, error);
          else failure = rehearseErrors.stepFailed(component, step.id, step.version, file, error);
          break outer;
        }
      }
    }

    let differences: SchemaDifference[] = [];
    if (!failure) {
      progress('comparing the scratch copy with every db/schema.ts');
      const pending = new Set(plan.pending.map((item) => item.component));
      const known = new Set(drift.map((difference) => difference.message));
      differences = (await diffSchema(db, declared, { exclude: isStateTable })).filter(
        (difference) => (difference.component !== undefined && pending.has(difference.component)) || !known.has(difference.message),
      );
    }
    const pending = new Set(plan.pending.map((item) => item.component));
    const warnings = [
      ...steps.flatMap((step) => (step.warning ? [step.warning] : [])),
      ...(differences.length > 0 ? [`after the steps the schema differs from db/schema.ts in ${differences.length} place(s): ${differences.map((d) => d.message).join('; ')}`] : []),
    ];
    return {
      liveSchema: clone.liveSchema,
      scratchSchema: scratch,
      rows,
      lockBudgetMs,
      baselineMs: Math.round(baselineMs * 1000) / 1000,
      tables: clone.tables,
      installed,
      steps,
      schema: {
        compared: !failure,
        matches: !failure && differences.length === 0,
        differences,
        drift: drift.filter((difference) => difference.component === undefined || !pending.has(difference.component)),
      },
      warnings,
      failure,
      exitCode: failure ? ExitCode.error : warnings.length > 0 ? ExitCode.pendingOrMaintenance : ExitCode.ok,
    };
  } finally {
    recorder.recording = false;
    // The step connection goes first: a step that failed mid-transaction must not hold locks
    // on the scratch tables while the schema is dropped.
    await db.destroy().catch(() => {});
    await monitor?.close();
    if (created) await sql`drop schema if exists ${sql.id(scratch)} cascade`.execute(database.db);
  }
}
