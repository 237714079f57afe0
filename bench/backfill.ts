/**
 * Backfills of a large table: a single UPDATE of every row against the batched background
 * migration engine (src/migrations), with no traffic and under steady traffic; and the
 * maintenance window of a release whose long step is a `pre` step, against the same steps
 * all run as `main`.
 *
 * One table `t` (1,000,000 rows by default) in a fresh database with three empty nullable
 * columns, one per case, so each case writes a column nobody wrote before; the table is
 * rewritten (`vacuum full analyze`) before each case, so each starts on a compact table:
 * - (a) `update t set a2 = score * 2`, one statement, no traffic;
 * - (b) a `phase: 'background'` step (`update t set b2 = score * 2 where id between from and to`),
 *   queued with queueBackgroundMigration and worked to the end with runBatch under the rules of
 *   finishBackgroundMigration's defaults (no pause between batches, 1000 ms after pressure),
 *   no traffic;
 * - (c) the same step on c2, worked with the pauses the background worker uses (20 ms between
 *   batches, 1000 ms after a batch that met pressure), under ~200 requests/s of
 *   bench/support/traffic.ts on `t`, after a baseline window of the same traffic alone.
 *
 * The release part generates a two-component site (bench/support/site.ts), installs it with the
 * CLI, fills the plugin's table with the same number of rows, and upgrades it with the CLI in
 * maintenance mode (`upgrade --non-interactive --json`) to a release of two steps: a pre step
 * that adds a column and an index (CONCURRENTLY, through ctx.schema) and a main step that adds
 * another column; then the same release with both steps `phase: 'main'`, on its own database.
 * The window is the run's `mainDurationMs` (main steps, in maintenance).
 *
 * Targets: (b)/(a) rows/s ≥ 0.5; traffic p99 during (c) ≤ 2× the baseline's; longest request
 * during (c) ≤ 250 ms.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { BackgroundStep } from '../src/migrations/index.ts';
import { createBenchDatabase, type ScratchDatabase } from './support/postgres.ts';
import { expectExit, runNode } from './support/process.ts';
import { sleep } from './support/serve.ts';
import { generateSite, REPO, type GeneratedComponent, type GeneratedSite } from './support/site.ts';
import { formatMs, percentile } from './support/stats.ts';
import { oldCodeQueries, startTraffic, windowStats, type RequestSample, type Traffic } from './support/traffic.ts';
import { defineBenchmark, type TargetCheck, type Timing } from './support/types.ts';

const ROWS = Number(process.env.BENCH_BACKFILL_ROWS ?? 1_000_000);
/** Traffic alone before (c), the baseline p99 and stall are taken from it. */
const BASELINE_MS = Number(process.env.BENCH_BACKFILL_BASELINE_S ?? 15) * 1000;
/** Traffic kept after (c), so requests it held up complete and are counted. */
const SETTLE_MS = 1000;
const RATE = 200;
const CONNECTIONS = 4;
const STALL_TARGET_MS = 250;
const RATIO_TARGET = 0.5;
const P99_FACTOR_TARGET = 2;
/**
 * The step's tuning. Unset (the default), the engine's defaults apply (targetBatchMs 100,
 * batch size 100 / 1000 / 50 000); the bench reports which were used.
 */
const TARGET_BATCH_MS = process.env.BENCH_BACKFILL_TARGET_MS === undefined ? undefined : Number(process.env.BENCH_BACKFILL_TARGET_MS);
const MAX_BATCH = process.env.BENCH_BACKFILL_MAX_BATCH === undefined ? undefined : Number(process.env.BENCH_BACKFILL_MAX_BATCH);
/** Pauses of the background worker's defaults (startBackgroundWorker), used for (c). */
const WORKER_PAUSE_MS = 20;
const WORKER_PRESSURE_PAUSE_MS = 1000;
/** finishBackgroundMigration's defaults (pauseMs 0), used for (b). */
const FINISH_PRESSURE_PAUSE_MS = 1000;
const BIN = join(REPO, 'bin', 'outageless.js');

type Engine = typeof import('../src/migrations/index.ts');
type StateTables = typeof import('../src/state/tables.ts');

interface BackfillRun {
  readonly label: string;
  readonly rows: number;
  readonly wallMs: number;
  readonly batches?: number;
  readonly finalBatchSize?: number;
  readonly pressureBatches?: number;
  readonly retries?: number;
  readonly verified: boolean;
}

function rowsPerSecond(run: BackfillRun): number {
  return run.rows / (run.wallMs / 1000);
}

function formatRate(value: number): string {
  return `${Math.round(value).toLocaleString('en-US')} rows/s`;
}

/** The batch function a plugin's `db/upgrade.ts` would declare, writing `column`. */
function backfillStep(id: string, column: string): BackgroundStep {
  return {
    phase: 'background',
    version: 2026020100,
    id,
    description: `Backfill t.${column} from score`,
    table: 't',
    key: 'id',
    ...(TARGET_BATCH_MS === undefined ? {} : { targetBatchMs: TARGET_BATCH_MS }),
    ...(MAX_BATCH === undefined ? {} : { batchSize: { max: MAX_BATCH } }),
    async batch({ db, from, to }) {
      const result = await sql`update t set ${sql.ref(column)} = score * 2 where id between ${from} and ${to}`.execute(db);
      return Number(result.numAffectedRows ?? 0);
    },
  };
}

async function createTable(admin: pg.Client, log: (message: string) => void): Promise<void> {
  const started = performance.now();
  await admin.query(`create table t (
    id bigint generated by default as identity primary key,
    name text not null,
    score integer,
    a2 integer, b2 integer, c2 integer
  )`);
  await admin.query(`insert into t (name, score) select 'row ' || g, g % 1000 from generate_series(1, ${ROWS}) g`);
  log(`table t: ${ROWS} rows, filled in ${formatMs(performance.now() - started)}`);
}

async function compact(admin: pg.Client): Promise<void> {
  await admin.query('checkpoint');
  await admin.query('vacuum full analyze t');
  await admin.query('checkpoint');
}

async function unfilled(admin: pg.Client, column: string, maxKey: number): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`select count(*)::int as n from t where id <= $1 and "${column}" is null`, [maxKey]);
  return rows[0]?.n ?? -1;
}

/** (a): the naive backfill, one statement in its own transaction. */
async function naiveUpdate(admin: pg.Client): Promise<BackfillRun> {
  const started = performance.now();
  const result = await admin.query('update t set a2 = score * 2');
  const wallMs = performance.now() - started;
  return { label: '(a) single UPDATE of all rows', rows: result.rowCount ?? 0, wallMs, verified: (await unfilled(admin, 'a2', ROWS)) === 0 };
}

/**
 * (b) and (c): queue the step's migration, then work it to the end batch by batch with
 * runBatch, under the rules of finishBackgroundMigration and of the worker (a pause after each
 * committed batch, a longer one after a batch that met pressure, a failed batch retried when
 * due), counting what happened on the way.
 */
async function backgroundMigration(
  engine: Engine,
  db: Kysely<any>,
  admin: pg.Client,
  label: string,
  step: BackgroundStep,
  column: string,
  pauses: { readonly pauseMs: number; readonly pressurePauseMs: number },
): Promise<BackfillRun> {
  const queued = await db.transaction().execute((trx) => engine.queueBackgroundMigration(trx, { component: 'local_bench', step }));
  const maxKey = queued.migration.maxKey ?? 0;
  let pressureBatches = 0;
  let retries = 0;
  let migration = queued.migration;
  const started = performance.now();
  while (migration.state !== 'finished') {
    const outcome = await engine.runBatch(db, { component: 'local_bench', id: step.id }, step);
    if (outcome.migration) migration = outcome.migration;
    switch (outcome.kind) {
      case 'done':
        if (outcome.pressure) pressureBatches++;
        if (outcome.migration.state !== 'finished') await sleep(outcome.pressure ? pauses.pressurePauseMs : pauses.pauseMs);
        break;
      case 'retrying':
        retries++;
        if (outcome.retryAt) await sleep(Math.max(0, outcome.retryAt.getTime() - Date.now()));
        break;
      case 'failed':
        throw new Error(`${label}: the migration failed at key ${outcome.key}: ${outcome.error}`);
      case 'skipped':
        if (outcome.reason === 'state' && outcome.migration?.state !== 'finished') throw new Error(`${label}: the migration is ${outcome.migration?.state ?? 'gone'}`);
        if (outcome.reason !== 'state') await sleep(10);
        break;
    }
  }
  const wallMs = performance.now() - started;
  const verified = (await unfilled(admin, column, maxKey)) === 0;
  return { label, rows: migration.rowsChanged, wallMs, batches: migration.batches, finalBatchSize: migration.batchSize, pressureBatches, retries, verified };
}

interface LatencySummary {
  readonly requests: number;
  readonly p50: number;
  readonly p99: number;
  readonly longest: number;
  readonly over250: number;
  readonly longestGap: number;
  readonly errors: number;
}

function latency(samples: readonly RequestSample[], from: number, to: number, errorsUntil = to): LatencySummary {
  const stats = windowStats(samples, from, to, errorsUntil);
  const latencies = samples.filter((s) => s.end >= from && s.start <= to).map((s) => s.end - s.start);
  return {
    requests: stats.requests,
    p50: latencies.length > 0 ? percentile(latencies, 50) : 0,
    p99: latencies.length > 0 ? percentile(latencies, 99) : 0,
    longest: stats.longestMs,
    over250: stats.over250,
    longestGap: stats.longestGapMs,
    errors: stats.errors,
  };
}

function describeLatency(summary: LatencySummary): string {
  return `${summary.requests} requests, p50 ${summary.p50.toFixed(1)} ms, p99 ${summary.p99.toFixed(1)} ms, longest ${formatMs(summary.longest)}, ` +
    `${summary.over250} > ${STALL_TARGET_MS} ms, longest gap between completions ${formatMs(summary.longestGap)}, ${summary.errors} errors`;
}

// ---------------------------------------------------------------------------------------------
// The release with a pre step, against the same steps as main.

const RELEASE_VERSION = 2026020100;

function releaseFiles(component: GeneratedComponent, prePhase: 'pre' | 'main'): { version: string; schema: string; upgrade: string } {
  const table = component.table;
  const version = `import { defineVersion } from 'outageless';

export default defineVersion({
  component: '${component.name}',
  version: ${RELEASE_VERSION},
  release: '1.1',
  maturity: 'stable',
  requires: 2026010100,
});
`;
  const schema = `import { defineSchema } from 'outageless';

export default defineSchema({
  tables: {
    ${table}: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        name: { type: 'varchar(255)', default: '' },
        created: { type: 'timestamp', default: { sql: 'now()' } },
        extra1: { type: 'integer', nullable: true },
        extra2: { type: 'text', nullable: true },
        extra3: { type: 'boolean', default: false },
        rank: { type: 'integer', nullable: true },
        note: { type: 'text', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['name'] }, { columns: ['extra1'] }],
    },
  },
});
`;
  const old = (version: number, column: string, definition: string) => `    {
      version: ${version},
      id: '${component.name}_add_${column}',
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('${table}', '${column}', ${definition});
      },
    },
`;
  const upgrade = `import { defineUpgrade } from 'outageless';

export default defineUpgrade({
  steps: [
${old(2026010101, 'extra1', "{ type: 'integer', nullable: true }")}${old(2026010102, 'extra2', "{ type: 'text', nullable: true }")}${old(2026010103, 'extra3', "{ type: 'boolean', default: false }")}    {
      version: 2026013100,
      id: '${component.name}_rank_and_extra1_index',
      description: 'Add rank, and an index on extra1 built CONCURRENTLY over every row',
      outage: 'none',
      phase: '${prePhase}',
      async run({ schema }) {
        await schema.addColumn('${table}', 'rank', { type: 'integer', nullable: true });
        await schema.addIndex('${table}', { columns: ['extra1'] });
      },
    },
    {
      version: ${RELEASE_VERSION},
      id: '${component.name}_add_note',
      description: 'Add note',
      outage: 'none',
      phase: 'main',
      async run({ schema }) {
        await schema.addColumn('${table}', 'note', { type: 'text', nullable: true });
      },
    },
  ],
});
`;
  return { version, schema, upgrade };
}

interface ReleaseRun {
  readonly variant: 'pre' | 'main';
  readonly preDurationMs: number;
  readonly mainDurationMs: number;
  readonly durationMs: number;
  readonly wallMs: number;
  readonly mode: string;
}

async function releaseRun(serverUrl: string, variant: 'pre' | 'main', log: (message: string) => void): Promise<ReleaseRun> {
  let site: GeneratedSite | undefined;
  let database: ScratchDatabase | undefined;
  try {
    site = await generateSite(2);
    database = await createBenchDatabase(serverUrl);
    const siteArgs = ['--root', site.root, '--database', database.url];
    expectExit(await runNode([BIN, 'upgrade', '--non-interactive', ...siteArgs]), 0, `install of the ${variant} site`);
    const plugin = site.components[1]!;
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const filled = performance.now();
      await client.query(`insert into "${plugin.table}" (name, extra1) select 'row ' || g, g % 1000 from generate_series(1, ${ROWS}) g`);
      await client.query(`vacuum analyze "${plugin.table}"`);
      await client.query('checkpoint');
      log(`release (${variant}): ${plugin.table} filled with ${ROWS} rows in ${formatMs(performance.now() - filled)}`);
    } finally {
      await client.end();
    }
    const files = releaseFiles(plugin, variant);
    await writeFile(join(site.root, plugin.dir, 'version.ts'), files.version);
    await writeFile(join(site.root, plugin.dir, 'db', 'schema.ts'), files.schema);
    await writeFile(join(site.root, plugin.dir, 'db', 'upgrade.ts'), files.upgrade);
    const upgrade = await runNode([BIN, 'upgrade', '--non-interactive', '--json', ...siteArgs]);
    expectExit(upgrade, 0, `upgrade of the ${variant} site to ${RELEASE_VERSION}`);
    const json = JSON.parse(upgrade.stdout) as { mode: string; durationMs: number; preDurationMs: number; mainDurationMs: number };
    const run: ReleaseRun = { variant, preDurationMs: json.preDurationMs, mainDurationMs: json.mainDurationMs, durationMs: json.durationMs, wallMs: upgrade.wallMs, mode: json.mode };
    log(`release (${variant}): mode ${run.mode}, pre ${formatMs(run.preDurationMs)}, main ${formatMs(run.mainDurationMs)} (the window), run ${formatMs(run.durationMs)}, CLI wall ${formatMs(run.wallMs)}`);
    return run;
  } finally {
    await database?.drop();
    await site?.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------

export default defineBenchmark({
  name: 'backfill',
  title: 'Backfill: single UPDATE vs background migration, and the window of a release with pre steps',
  description:
    `A table t of ${ROWS} rows in a fresh database: (a) one \`update t set a2 = score * 2\`; (b) a \`phase: 'background'\` step doing the same in batches ` +
    '(queueBackgroundMigration, then runBatch until finished, pausing as finishBackgroundMigration does by default), no traffic; (c) the same under ' +
    `${RATE} requests/s of old-code traffic over a pg Pool of ${CONNECTIONS}, with the background worker's pauses, against a baseline window of the traffic alone. ` +
    `Then a release of a pre step (add a column, an index CONCURRENTLY on a ${ROWS}-row table) and a main step, upgraded in maintenance mode, against the same steps both \`main\`. ` +
    `Targets: **(b)/(a) rows/s ≥ ${RATIO_TARGET}**, **traffic p99 during (c) ≤ ${P99_FACTOR_TARGET}× baseline**, **longest request during (c) ≤ ${STALL_TARGET_MS} ms**.`,

  async run(context) {
    const { log } = context;
    const engine = (await import(pathToFileURL(join(REPO, 'dist', 'migrations', 'index.js')).href)) as Engine;
    const { ensureStateTables } = (await import(pathToFileURL(join(REPO, 'dist', 'state', 'tables.js')).href)) as StateTables;
    const database = await createBenchDatabase(context.serverUrl);
    const admin = new pg.Client({ connectionString: database.url, application_name: 'outageless-bench-admin' });
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 2, application_name: 'outageless-bench-migration' }) }) });
    let traffic: Traffic | undefined;
    try {
      await admin.connect();
      await ensureStateTables(db);
      await createTable(admin, log);

      await compact(admin);
      log('(a) single UPDATE…');
      const a = await naiveUpdate(admin);
      log(`(a) ${a.rows} rows in ${formatMs(a.wallMs)}: ${formatRate(rowsPerSecond(a))}`);

      await compact(admin);
      log('(b) background migration, no traffic…');
      const b = await backgroundMigration(engine, db, admin, '(b) background migration, no traffic', backfillStep('backfill_b2', 'b2'), 'b2', { pauseMs: 0, pressurePauseMs: FINISH_PRESSURE_PAUSE_MS });
      log(`(b) ${b.rows} rows in ${formatMs(b.wallMs)}, ${b.batches} batches, last batch size ${b.finalBatchSize}: ${formatRate(rowsPerSecond(b))}`);

      await compact(admin);
      traffic = startTraffic(database.url, { table: 't', rows: ROWS, ratePerSecond: RATE, connections: CONNECTIONS });
      await sleep(2000); // connections open, plans cached
      log(`(c) baseline: ${formatMs(BASELINE_MS)} of traffic alone…`);
      const baselineFrom = performance.now();
      await sleep(BASELINE_MS);
      const baselineTo = performance.now();
      log('(c) background migration under traffic…');
      const cFrom = performance.now();
      const c = await backgroundMigration(engine, db, admin, '(c) background migration, ~200 requests/s', backfillStep('backfill_c2', 'c2'), 'c2', { pauseMs: WORKER_PAUSE_MS, pressurePauseMs: WORKER_PRESSURE_PAUSE_MS });
      const cTo = performance.now();
      await sleep(SETTLE_MS);
      const settled = performance.now();
      const issued = traffic.samples.length;
      const trafficMs = settled - baselineFrom + 2000;
      await traffic.stop();
      const samples = traffic.samples;
      traffic = undefined;
      const baseline = latency(samples, baselineFrom, baselineTo);
      const during = latency(samples, cFrom, cTo, settled);
      log(`(c) ${c.rows} rows in ${formatMs(c.wallMs)}, ${c.batches} batches, last batch size ${c.finalBatchSize}: ${formatRate(rowsPerSecond(c))}`);
      log(`(c) baseline: ${describeLatency(baseline)}`);
      log(`(c) during:   ${describeLatency(during)}`);

      log('release with a pre step…');
      const withPre = await releaseRun(context.serverUrl, 'pre', log);
      log('release with both steps main…');
      const allMain = await releaseRun(context.serverUrl, 'main', log);

      const ratio = rowsPerSecond(b) / rowsPerSecond(a);
      const p99Factor = baseline.p99 > 0 ? during.p99 / baseline.p99 : Number.POSITIVE_INFINITY;
      const tuning = TARGET_BATCH_MS === undefined && MAX_BATCH === undefined
        ? "the engine's defaults (targetBatchMs 100, batch size 100 / 1000 / 50 000)"
        : `tuned in the bench: ${TARGET_BATCH_MS === undefined ? '' : `targetBatchMs ${TARGET_BATCH_MS}`}${TARGET_BATCH_MS !== undefined && MAX_BATCH !== undefined ? ', ' : ''}${MAX_BATCH === undefined ? '' : `batchSize.max ${MAX_BATCH}`}`;
      const queries = oldCodeQueries('t');
      const run = (r: BackfillRun): string =>
        `${r.label}: ${r.rows} rows in ${formatMs(r.wallMs)}, ${formatRate(rowsPerSecond(r))}${r.batches === undefined ? '' : `, ${r.batches} batches, last batch size ${r.finalBatchSize}, ${r.pressureBatches} batches met pressure, ${r.retries} retried`}; ${r.verified ? 'every row checked' : '**ROWS LEFT UNFILLED**'}`;

      const timings: Timing[] = [
        ...[a, b, c].map((r) => ({ label: `${r.label}: wall`, command: r === a ? 'update t set a2 = score * 2' : `runBatch(db, migration, step) until finished, ${r === c ? `${WORKER_PAUSE_MS}` : '0'} ms between batches, ${r === c ? WORKER_PRESSURE_PAUSE_MS : FINISH_PRESSURE_PAUSE_MS} ms after pressure`, runs: 1, median: r.wallMs, p90: r.wallMs, min: r.wallMs })),
        ...[withPre, allMain].map((r) => ({
          label: `release, ${r.variant === 'pre' ? 'index step as pre' : 'both steps main'}: maintenance window (main steps; pre ${formatMs(r.preDurationMs)} with fronts serving)`,
          command: 'outageless upgrade --non-interactive --json (maintenance mode)',
          runs: 1, median: r.mainDurationMs, p90: r.mainDurationMs, min: r.mainDurationMs,
        })),
      ];
      const targets: TargetCheck[] = [
        { label: '(b) rows/s ÷ (a) rows/s', target: `≥ ${RATIO_TARGET}`, measured: `${ratio.toFixed(2)} (${formatRate(rowsPerSecond(b))} / ${formatRate(rowsPerSecond(a))})${b.verified ? '' : ', but rows were left unfilled'}`, met: ratio >= RATIO_TARGET && b.verified && a.verified },
        { label: 'traffic p99 during (c) ÷ baseline p99', target: `≤ ${P99_FACTOR_TARGET}×`, measured: `${p99Factor.toFixed(2)}× (${during.p99.toFixed(1)} ms / ${baseline.p99.toFixed(1)} ms)`, met: p99Factor <= P99_FACTOR_TARGET },
        { label: 'longest request during (c)', target: `≤ ${STALL_TARGET_MS} ms`, measured: `${formatMs(during.longest)} (baseline ${formatMs(baseline.longest)})${c.verified ? '' : ', but rows were left unfilled'}`, met: during.longest <= STALL_TARGET_MS && c.verified },
      ];
      return {
        name: 'backfill',
        title: 'Backfill: single UPDATE vs background migration, and the window of a release with pre steps',
        setup: [
          `table t: ${ROWS} rows (id bigint identity primary key, name text, score integer, and one empty integer column per case); \`vacuum full analyze t\` and a checkpoint before each case`,
          `background step: \`update t set <column> = score * 2 where id between $from and $to\`, ${tuning}`,
          run(a),
          run(b),
          `${run(c)}; worker pauses ${WORKER_PAUSE_MS} ms between batches, ${WORKER_PRESSURE_PAUSE_MS} ms after pressure`,
          `(b)/(a): ${ratio.toFixed(2)}; (c)/(a): ${(rowsPerSecond(c) / rowsPerSecond(a)).toFixed(2)}`,
          `traffic: ${issued} requests in ${formatMs(trafficMs)} over a pg Pool of ${CONNECTIONS}: \`${queries.read}\`, \`${queries.update}\`, \`${queries.insert}\``,
          `(c) baseline (${formatMs(BASELINE_MS)} of traffic alone, just before): ${describeLatency(baseline)}`,
          `(c) during the migration (${formatMs(cTo - cFrom)}; errors counted to ${formatMs(SETTLE_MS)} after): ${describeLatency(during)}`,
          ...[withPre, allMain].map((r) => `release (${r.variant === 'pre' ? 'add column + CONCURRENTLY index as pre, add column as main' : 'both steps main'}), ${r.mode} mode: pre ${formatMs(r.preDurationMs)}, main (the window) ${formatMs(r.mainDurationMs)}, whole run ${formatMs(r.durationMs)}, CLI wall ${formatMs(r.wallMs)}`),
          `maintenance window, pre vs all main: ${formatMs(withPre.mainDurationMs)} vs ${formatMs(allMain.mainDurationMs)}`,
        ],
        timings,
        targets,
      };
    } finally {
      await traffic?.stop();
      await db.destroy().catch(() => {});
      await admin.end().catch(() => {});
      await database.drop();
    }
  },
});
