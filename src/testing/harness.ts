import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { inspect, isDeepStrictEqual } from 'node:util';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import type { OutageClass, StepContext, StepPhase } from '../component/definitions.ts';
import { discoverSite, type Component, type SiteCode } from '../component/discover.ts';
import { loadInstall, loadSchema } from '../component/files.ts';
import { openDatabase, type SiteDatabase } from '../database/open.ts';
import { parseDatabaseUrl, redactDatabaseUrl } from '../database/url.ts';
import { errors } from '../errors.ts';
import type { PlanItem, PlannedStep } from '../plan/plan.ts';
import { readPlan } from '../plan/read.ts';
import { installSchema } from '../schema/ddl.ts';
import type { SchemaDefinition } from '../schema/definition.ts';
import { diffSchema, type SchemaDifference } from '../schema/diff.ts';
import { introspectTable } from '../schema/introspect.ts';
import { createSchemaHelpers } from '../schema/postgres-helpers.ts';
import { isStateTable } from '../state/tables.ts';
import { runUpgrade } from '../upgrade/run.ts';
import { testingErrors } from './errors.ts';
import { describeChanges, takeSnapshot } from './snapshot.ts';

export interface StepHarnessOptions {
  /** App root of release N-1 (the directory with `core/` and `plugins/`); installed through the real runner. */
  readonly from: string;
  /** App root of release N: its pending steps, against what `from` installed, are what the harness runs. */
  readonly to: string;
  /**
   * `pglite://memory` (the default): a fresh in-process database per harness. A
   * `postgres://…` URL: the harness creates a schema of its own there, runs everything with
   * that schema as its search path, and drops it in `close()`.
   */
  readonly database?: string;
  /** Lock timeout of each `ctx.schema` statement, as `upgrade --lock-timeout` sets it. */
  readonly lockTimeoutMs?: number;
  /** Called with each `ctx.log` line of a step or install; they are kept in `harness.logs` as well. */
  readonly onLog?: (entry: StepLog) => void;
}

/** One `ctx.log` line. `step` is null for a component's `db/install.ts`. */
export interface StepLog {
  readonly component: string;
  readonly step: string | null;
  readonly message: string;
}

/** A step of release N that the plan holds for the database release N-1 left. */
export interface HarnessStep {
  readonly component: string;
  readonly id: string;
  readonly version: number;
  readonly outage: OutageClass;
  readonly phase: StepPhase | 'background' | 'manual';
  readonly transaction: boolean;
  /** `already-applied`: applied before under another version, so the runner (and the harness) skips it. */
  readonly status: 'pending' | 'ran' | 'already-applied';
}

/** What `runPending` did, in order. */
export type HarnessRun =
  | { readonly kind: 'step'; readonly component: string; readonly step: string; readonly version: number }
  | { readonly kind: 'install'; readonly component: string; readonly version: number };

export interface RunOptions {
  /**
   * Run each step a second time right after the first and fail with
   * `OUTAGELESS_ERR_TEST_NOT_IDEMPOTENT` if that run throws or changes the schema or any
   * row. Default true: the runner reruns a step after a crash, so every step must pass it.
   */
  readonly twice?: boolean;
}

export interface StepHarness {
  /** The scratch database, for seeding and reading rows with the query builder. */
  readonly db: Kysely<any>;
  readonly kind: 'pglite' | 'postgres';
  /** The PostgreSQL schema the harness owns, or `public` on PGlite. */
  readonly schema: string;
  readonly from: SiteCode;
  readonly to: SiteCode;
  /** Every `ctx.log` line so far. */
  readonly logs: readonly StepLog[];
  /** The steps of release N for one component (or every component), in the order the runner runs them. */
  pending(component?: string): readonly HarnessStep[];
  /** Inserts rows and returns them as stored (generated ids included). */
  seed(table: string, rows: readonly Record<string, unknown>[]): Promise<Record<string, unknown>[]>;
  /** Every row of a table, in primary-key order. */
  rows(table: string): Promise<Record<string, unknown>[]>;
  /**
   * Fails with `OUTAGELESS_ERR_TEST_ROWS_MISMATCH` unless the table holds exactly as many
   * rows as `expected`, in primary-key order, each equal on the columns its expected row
   * names. A number also matches a numeric string of the same value (`numeric` columns
   * read as strings).
   */
  assertRows(table: string, expected: readonly Record<string, unknown>[]): Promise<void>;
  /** Runs one pending step (twice by default); the component's earlier pending steps must have run. */
  runStep(component: string, step: string, options?: RunOptions): Promise<void>;
  /**
   * Runs every pending step not run yet (each twice by default), of one component or of the
   * whole site in upgrade order; components new in release N are installed from their
   * `db/schema.ts` and `db/install.ts`, as the runner does.
   */
  runPending(component?: string, options?: RunOptions): Promise<readonly HarnessRun[]>;
  /**
   * Fails with `OUTAGELESS_ERR_TEST_SCHEMA_MISMATCH` unless the live tables of one
   * component (or of the whole site) equal its `db/schema.ts` in release N, compared the
   * way `outageless check-schema` compares them.
   */
  assertSchemaMatches(component?: string): Promise<void>;
  /** Closes the database; on PostgreSQL it drops the harness's schema. */
  close(): Promise<void>;
}

/**
 * A test harness for upgrade steps (`outageless/testing`). It installs release N-1 into a
 * scratch database with the real runner, so the database is what an operator has before
 * the upgrade; then a test seeds rows, runs the pending steps of release N with the context
 * the runner gives them, and asserts on rows and on `db/schema.ts`. Every failure is a
 * thrown {@link OutagelessError} with a stable code, so it works under any test runner.
 *
 * The harness runs steps itself rather than through `runUpgrade`, so it can run one step,
 * or one component, and run each twice. It does not record them in the `outageless_*`
 * tables: those stay as release N-1 left them.
 *
 * @example
 * ```ts
 * import { test } from 'node:test'
 * import { createStepHarness } from 'outageless/testing'
 *
 * test('assign_add_duedate', async () => {
 *   const harness = await createStepHarness({ from: 'releases/1', to: 'releases/2' })
 *   try {
 *     const [course] = await harness.seed('course', [{ shortname: 'c1', fullname: 'Course 1' }])
 *     await harness.seed('assign', [{ course: course!.id, name: 'Essay' }])
 *     await harness.runStep('mod_assign', 'assign_add_duedate')  // runs it twice
 *     await harness.assertRows('assign', [{ name: 'Essay', duedate: null }])
 *     await harness.assertSchemaMatches('mod_assign')
 *   } finally {
 *     await harness.close()
 *   }
 * })
 * ```
 */
export async function createStepHarness(options: StepHarnessOptions): Promise<StepHarness> {
  const url = options.database ?? 'pglite://memory';
  const location = parseDatabaseUrl(url);
  // An embedded directory is somebody's site: installing release N-1 into it would be a mistake.
  if (location.kind === 'pglite') throw testingErrors.databaseNotScratch(redactDatabaseUrl(url));
  const [from, to] = await Promise.all([discoverSite(options.from), discoverSite(options.to)]);

  const scratch = location.kind === 'postgres' ? await createScratchSchema(url) : undefined;
  let database: SiteDatabase | undefined;
  try {
    database = await openDatabase(scratch?.url ?? url);
    // waitSeconds: the upgrade lock is per database, and harnesses of parallel test files
    // may share one PostgreSQL database (each in its own schema).
    await runUpgrade({
      database,
      code: from,
      mode: 'maintenance',
      allowUnstable: true,
      waitSeconds: 120,
      ...(options.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: options.lockTimeoutMs }),
    });
    const { plan } = await readPlan(database.db, { code: to });
    return harness(database, scratch, from, to, plan.pending, options);
  } catch (error) {
    await database?.close();
    await scratch?.drop();
    throw error;
  }
}

interface ScratchSchema {
  readonly schema: string;
  /** The URL with the schema as every connection's search path. */
  readonly url: string;
  drop(): Promise<void>;
}

async function onServer(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'outageless-step-harness' });
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw errors.databaseUnreachable(redactDatabaseUrl(url), error);
  }
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

async function createScratchSchema(url: string): Promise<ScratchSchema> {
  const schema = `outageless_test_${randomBytes(6).toString('hex')}`;
  await onServer(url, `create schema "${schema}"`);
  // The search path is set by the server at connect (libpq `options`), so every pooled
  // connection, the upgrade lock's own included, works in the scratch schema.
  const scoped = new URL(url);
  const given = scoped.searchParams.get('options');
  scoped.searchParams.set('options', `${given ? `${given} ` : ''}-c search_path=${schema}`);
  return { schema, url: scoped.toString(), drop: () => onServer(url, `drop schema if exists "${schema}" cascade`) };
}

const key = (component: string, step: string) => `${component}\u0000${step}`;

function harness(
  database: SiteDatabase,
  scratch: ScratchSchema | undefined,
  from: SiteCode,
  to: SiteCode,
  pendingItems: readonly PlanItem[],
  options: StepHarnessOptions,
): StepHarness {
  const db = database.db;
  const logs: StepLog[] = [];
  const ran = new Set<string>();
  const installed = new Set<string>();
  let closed = false;

  const dbFile = (component: Component, file: string) => join(component.versionFile, '..', 'db', file);

  function componentOf(name: string): Component {
    const component = to.components.get(name);
    if (!component) throw errors.unknownComponent(name, [...to.components.keys()]);
    return component;
  }

  function pendingItem(name: string, step: string | undefined): PlanItem {
    const component = componentOf(name);
    const item = pendingItems.find((candidate) => candidate.component === name);
    if (!item) {
      const installedFrom = from.components.get(name)?.manifest.version;
      throw testingErrors.notPending(name, step, dbFile(component, 'upgrade.ts'),
        `nothing is pending: release N has version ${component.manifest.version} and release N-1 installed ${installedFrom ?? 'nothing'}; raise version in ${component.versionFile}`);
    }
    return item;
  }

  /** The context the runner gives a step: the database (or its transaction), `ctx.schema` on it, and a log. */
  function stepContext(on: Kysely<any>, component: string, step: string | null): StepContext {
    return {
      db: on,
      component,
      schema: createSchemaHelpers(on, options.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: options.lockTimeoutMs }),
      log: (message) => {
        const entry = { component, step, message };
        logs.push(entry);
        options.onLog?.(entry);
      },
    };
  }

  // As the runner does: a transactional step commits as a whole; a `transaction: false`
  // step runs on the database directly, so its helpers can build indexes concurrently.
  async function runOnce(item: PlanItem, step: PlannedStep): Promise<void> {
    const definition = step.step;
    // A batched manual action runs like a background migration when the author tests it.
    const batched = definition.phase === 'background' || (definition.phase === 'manual' && !definition.run && definition.batch && definition.table && definition.key)
      ? (definition as { table: string; key: string; batch: NonNullable<typeof definition.batch> })
      : undefined;
    if (batched) {
      // All of it, in the engine's shape: key ranges, each batch its own transaction.
      const { rows } = await sql<{ low: string | null; high: string | null }>`select min(${sql.ref(batched.key)})::text as low, max(${sql.ref(batched.key)})::text as high from ${sql.table(batched.table)}`.execute(db);
      if (rows[0]?.low == null || rows[0].high == null) return;
      for (let from = Number(rows[0].low); from <= Number(rows[0].high); from += 1000) {
        await db.transaction().execute((trx) => Promise.resolve(batched.batch({ db: trx, from, to: from + 999 })));
      }
      return;
    }
    const run = definition.phase === 'background' ? undefined : definition.run;
    if (!run) return;
    if (step.transaction) await db.transaction().execute((trx) => Promise.resolve(run(stepContext(trx, item.component, step.id))));
    else await run(stepContext(db, item.component, step.id));
  }

  async function execute(item: PlanItem, step: PlannedStep, runOptions: RunOptions | undefined): Promise<void> {
    const file = dbFile(item.code!, 'upgrade.ts');
    try {
      await runOnce(item, step);
    } catch (error) {
      throw testingErrors.stepFailed(item.component, step.id, file, error);
    }
    ran.add(key(item.component, step.id));
    if (runOptions?.twice === false) return;
    const before = await takeSnapshot(db);
    try {
      await runOnce(item, step);
    } catch (error) {
      throw testingErrors.notIdempotent(item.component, step.id, file, [`threw: ${error instanceof Error ? error.message : String(error)}`], error);
    }
    const changes = describeChanges(before, await takeSnapshot(db));
    if (changes.length > 0) throw testingErrors.notIdempotent(item.component, step.id, file, changes);
  }

  async function install(item: PlanItem): Promise<void> {
    const component = item.code!;
    const schema = await loadSchema(to, component);
    const initial = await loadInstall(to, component);
    try {
      await db.transaction().execute(async (trx) => {
        await installSchema(trx, schema);
        await initial?.run(stepContext(trx, component.name, null));
      });
    } catch (error) {
      throw errors.installFailed(component.name, dbFile(component, initial ? 'install.ts' : 'schema.ts'), error);
    }
    installed.add(component.name);
  }

  const notRunYet = (item: PlanItem, step: PlannedStep) => !step.alreadyApplied && !ran.has(key(item.component, step.id));

  async function rows(table: string): Promise<Record<string, unknown>[]> {
    const live = await introspectTable(db, table);
    if (!live) throw testingErrors.rowsMismatch(table, [`there is no table ${table} in the harness's schema`]);
    let query = db.selectFrom(table).selectAll();
    for (const column of live.primaryKey?.columns ?? live.columns.map((c) => c.name)) query = query.orderBy(column);
    return (await query.execute()) as Record<string, unknown>[];
  }

  return {
    db,
    kind: database.kind,
    schema: scratch?.schema ?? 'public',
    from,
    to,
    logs,

    pending(component) {
      if (component !== undefined) componentOf(component);
      return pendingItems
        .filter((item) => component === undefined || item.component === component)
        .flatMap((item) =>
          item.steps.map((step): HarnessStep => ({
            component: item.component,
            id: step.id,
            version: step.version,
            outage: step.outage,
            phase: step.phase,
            transaction: step.transaction,
            status: step.alreadyApplied ? 'already-applied' : ran.has(key(item.component, step.id)) ? 'ran' : 'pending',
          })),
        );
    },

    async seed(table, values) {
      if (values.length === 0) return [];
      return (await db.insertInto(table).values([...values]).returningAll().execute()) as Record<string, unknown>[];
    },

    rows,

    async assertRows(table, expected) {
      const actual = await rows(table);
      const problems: string[] = [];
      if (actual.length !== expected.length) problems.push(`${actual.length} row(s), expected ${expected.length}`);
      for (const [index, want] of expected.entries()) {
        const have = actual[index];
        if (!have) break;
        for (const [column, value] of Object.entries(want)) {
          if (!(column in have)) problems.push(`row ${index + 1}: there is no column ${column}`);
          else if (!sameValue(have[column], value)) problems.push(`row ${index + 1}: ${column} is ${show(have[column])}, expected ${show(value)}`);
        }
      }
      if (problems.length === 0) return;
      problems.push(`rows in primary-key order: ${show(actual.slice(0, 20))}${actual.length > 20 ? ` … (${actual.length - 20} more)` : ''}`);
      throw testingErrors.rowsMismatch(table, problems);
    },

    async runStep(component, id, runOptions) {
      const item = pendingItem(component, id);
      const file = dbFile(item.code!, 'upgrade.ts');
      if (item.action === 'install') {
        throw testingErrors.notPending(component, id, file, 'is new in release N: it installs from db/schema.ts and runs no steps; use runPending()');
      }
      const index = item.steps.findIndex((step) => step.id === id);
      const step = item.steps[index];
      if (!step) {
        const ids = item.steps.map((s) => s.id);
        throw testingErrors.notPending(component, id, file,
          `no pending step has this id (installed version ${item.installedVersion}; pending: ${ids.length > 0 ? ids.join(', ') : 'none'})`);
      }
      if (step.alreadyApplied) throw testingErrors.notPending(component, id, file, 'was applied before under another version: the runner skips it');
      const earlier = item.steps.slice(0, index).filter((s) => notRunYet(item, s));
      if (earlier.length > 0) {
        throw testingErrors.notPending(component, id, file,
          `runs after ${earlier.map((s) => s.id).join(', ')}, which ha${earlier.length === 1 ? 's' : 've'} not run yet: run ${earlier.length === 1 ? 'it' : 'them'} first, or use runPending('${component}')`);
      }
      await execute(item, step, runOptions);
    },

    async runPending(component, runOptions) {
      const items = component === undefined ? pendingItems : [pendingItem(component, undefined)];
      const runs: HarnessRun[] = [];
      for (const item of items) {
        if (item.action === 'install') {
          if (installed.has(item.component)) continue;
          await install(item);
          runs.push({ kind: 'install', component: item.component, version: item.codeVersion! });
          continue;
        }
        for (const step of item.steps) {
          if (!notRunYet(item, step)) continue;
          await execute(item, step, runOptions);
          runs.push({ kind: 'step', component: item.component, step: step.id, version: step.version });
        }
      }
      return runs;
    },

    async assertSchemaMatches(component) {
      if (component !== undefined) componentOf(component);
      const schemas = async (code: SiteCode) => {
        const all = new Map<string, SchemaDefinition>();
        for (const c of code.components.values()) all.set(c.name, await loadSchema(code, c));
        return all;
      };
      const [current, previous] = await Promise.all([schemas(to), schemas(from)]);
      // One component's tables are compared on their own (references to the other tables
      // resolve to the live ones); every other table then reads as undeclared, and is
      // filtered out below by its owner.
      const declared = component === undefined ? current : new Map([[component, current.get(component)!]]);
      const differences = await diffSchema(db, declared, { exclude: isStateTable });

      const owners = new Map<string, string>();
      for (const release of [previous, current]) {
        for (const [name, schema] of release) for (const table of Object.keys(schema.tables)) owners.set(table, name);
      }
      // An undeclared table belongs to whoever declares it in release N, else in N-1 (a drop
      // that no step did), else to the components whose steps ran (a table a step made).
      const touched = new Set([...ran].map((entry) => entry.split('\u0000')[0]));
      const concerns = (difference: SchemaDifference) => {
        if (component === undefined || difference.component === component) return true;
        if (difference.kind !== 'extra-table') return false;
        const owner = owners.get(difference.table);
        return owner === undefined ? touched.has(component) : owner === component;
      };
      const mine = differences.filter(concerns);
      if (mine.length === 0) return;

      const scope = pendingItems.filter((item) => component === undefined || item.component === component);
      const notRun = scope.flatMap((item) =>
        item.action === 'install'
          ? installed.has(item.component) ? [] : [`${item.component} (install)`]
          : item.steps.filter((step) => notRunYet(item, step)).map((step) => `${item.component} ${step.id}`),
      );
      const file = component === undefined ? 'the db/schema.ts files of release N' : dbFile(componentOf(component), 'schema.ts');
      throw testingErrors.schemaMismatch(component ?? 'site', file, mine.map((difference) => difference.message), notRun);
    },

    async close() {
      if (closed) return;
      closed = true;
      try {
        await database.close();
      } finally {
        await scratch?.drop();
      }
    },
  };
}

function sameValue(actual: unknown, expected: unknown): boolean {
  if (isDeepStrictEqual(actual, expected)) return true;
  // numeric columns come back as strings ('0.00000'); a test naturally writes 0.
  return typeof expected === 'number' && typeof actual === 'string' && actual.trim() !== '' && Number(actual) === expected;
}

function show(value: unknown): string {
  return inspect(value, { breakLength: Infinity, depth: 4 });
}
