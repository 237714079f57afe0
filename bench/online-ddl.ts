/**
 * Online DDL under traffic: each `ctx.schema` helper of an online step, on a large table under
 * steady old-code traffic, against the same change done the naive way (plain SQL, in a
 * transaction where a step would have run it in one), side by side in one run.
 *
 * One table `t` (1,000,000 rows by default) and a parent `p`; bench/support/traffic.ts issues
 * ~200 requests/s over a pg Pool of 4 (point reads, single-row updates, inserts) written for
 * the table as it was before any step. Each case runs online, is undone, runs naive, is undone;
 * the table is vacuumed between runs, outside the measured windows.
 *
 * Targets: longest stall ≤ 250 ms for every online helper, the lock-queue case (a reader holds
 * the table for 20 s) included; 0 errors from the old-code traffic during online steps.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { SchemaHelperOptions, SchemaHelpers } from '../src/schema/index.ts';
import { createBenchDatabase } from './support/postgres.ts';
import { REPO } from './support/site.ts';
import { sleep } from './support/serve.ts';
import { formatMs } from './support/stats.ts';
import { oldCodeQueries, startTraffic, windowStats, type Traffic, type WindowStats } from './support/traffic.ts';
import { defineBenchmark, type TargetCheck, type Timing } from './support/types.ts';

const ROWS = Number(process.env.BENCH_ONLINE_DDL_ROWS ?? 1_000_000);
const READER_MS = Number(process.env.BENCH_ONLINE_DDL_READER_S ?? 20) * 1000;
const RATE = 200;
const CONNECTIONS = 4;
const STALL_TARGET_MS = 250;
/** Traffic measured before each step, as the noise floor of the machine. */
const BASELINE_MS = 1000;
/** Traffic kept after each step, so requests it held up complete and are counted. */
const SETTLE_MS = 1000;
const PARENTS = 1000;
/** The lock-queue case's budget: longer than the reader, so the step completes after it ends. */
const LOCK_QUEUE_WAIT_MS = READER_MS * 3;

interface OnlineSide {
  /** The helper call as a step would write it. */
  readonly call: string;
  readonly options?: SchemaHelperOptions;
  run(schema: SchemaHelpers): Promise<void>;
}

interface NaiveSide {
  /** The SQL as a step would write it through `ctx.db`. */
  readonly statements: readonly string[];
  /** In one transaction, as a default (transactional) step runs it. */
  readonly transaction: boolean;
}

interface DdlCase {
  readonly name: string;
  readonly online: OnlineSide;
  readonly naive: NaiveSide;
  /** SQL that returns one row `{ ok: boolean }`: the change is really there. `$1` is the highest id before the step. */
  readonly verify: string;
  readonly undo: readonly string[];
  /** Hold `begin; select … from t limit 1` open for READER_MS while the step runs. */
  readonly reader?: boolean;
}

const CASES: readonly DdlCase[] = [
  {
    name: 'addIndex',
    online: { call: "schema.addIndex('t', { columns: ['score'] })", run: (schema) => schema.addIndex('t', { columns: ['score'] }) },
    naive: { statements: ['create index t_score_ix on t (score)'], transaction: true },
    verify: `select coalesce((select x.indisvalid from pg_index x join pg_class i on i.oid = x.indexrelid where i.relname = 't_score_ix'), false) as ok`,
    undo: ['drop index if exists t_score_ix'],
  },
  {
    name: 'addForeignKey',
    online: {
      call: "schema.addForeignKey('t', { columns: ['parent_id'], references: { table: 'p', columns: ['id'] } })",
      run: (schema) => schema.addForeignKey('t', { columns: ['parent_id'], references: { table: 'p', columns: ['id'] } }),
    },
    naive: { statements: ['alter table t add constraint t_parent_id_fk foreign key (parent_id) references p (id)'], transaction: true },
    verify: `select coalesce((select convalidated from pg_constraint where conname = 't_parent_id_fk' and contype = 'f'), false) as ok`,
    undo: ['alter table t drop constraint if exists t_parent_id_fk'],
  },
  {
    name: 'addColumn, volatile default',
    online: {
      call: "schema.addColumn('t', 'token', { type: 'text', default: { sql: 'gen_random_uuid()::text' } })",
      run: (schema) => schema.addColumn('t', 'token', { type: 'text', default: { sql: 'gen_random_uuid()::text' } }),
    },
    naive: { statements: ['alter table t add column token text not null default gen_random_uuid()::text'], transaction: true },
    verify: `select not exists (select 1 from t where token is null)
      and (select attnotnull from pg_attribute where attrelid = 't'::regclass and attname = 'token')
      and exists (select 1 from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum where d.adrelid = 't'::regclass and a.attname = 'token') as ok`,
    undo: ['alter table t drop column if exists token'],
  },
  {
    name: 'NOT NULL on an existing column',
    online: {
      call: "schema.changeColumn('t', 'score', { type: 'integer', nullable: false })",
      run: (schema) => schema.changeColumn('t', 'score', { type: 'integer', nullable: false }),
    },
    naive: { statements: ['alter table t alter column score set not null'], transaction: true },
    verify: `select attnotnull as ok from pg_attribute where attrelid = 't'::regclass and attname = 'score'`,
    undo: [
      'alter table t alter column score drop not null',
      `do $$ declare c text; begin
         for c in select conname from pg_constraint where conrelid = 't'::regclass and contype = 'c' loop
           execute format('alter table t drop constraint %I', c);
         end loop;
       end $$`,
    ],
  },
  {
    name: 'addColumn + backfill',
    online: {
      call: "schema.addColumn('t', 'score2', { type: 'integer', nullable: true }); schema.backfill('t', { set: { score2: { sql: 'score * 2' } } })",
      async run(schema) {
        await schema.addColumn('t', 'score2', { type: 'integer', nullable: true });
        await schema.backfill('t', { set: { score2: { sql: 'score * 2' } } });
      },
    },
    naive: { statements: ['alter table t add column score2 integer', 'update t set score2 = score * 2'], transaction: true },
    // Rows the old code inserts after the backfill passed them stay null: only earlier ones must be filled.
    verify: `select not exists (select 1 from t where id <= $1 and score2 is null) as ok`,
    undo: ['alter table t drop column if exists score2'],
  },
  {
    name: `addColumn behind a ${READER_MS / 1000} s reader (lock queue)`,
    online: {
      call: "schema.addColumn('t', 'note', { type: 'text', nullable: true })",
      options: { lockWaitMs: LOCK_QUEUE_WAIT_MS },
      run: (schema) => schema.addColumn('t', 'note', { type: 'text', nullable: true }),
    },
    naive: { statements: ['set lock_timeout = 0', 'alter table t add column note text'], transaction: false },
    verify: `select exists (select 1 from pg_attribute where attrelid = 't'::regclass and attname = 'note' and not attisdropped) as ok`,
    undo: ['alter table t drop column if exists note'],
    reader: true,
  },
];

type Mode = 'online' | 'naive';

interface StepResult {
  readonly caseName: string;
  readonly mode: Mode;
  readonly wallMs: number;
  readonly stats: WindowStats;
  readonly baseline: WindowStats;
  /** The step's own error, when it failed. */
  readonly failure?: string;
  /** Lock timeouts the helpers retried after (online only), by what they were doing. */
  readonly retries: ReadonlyMap<string, number>;
  /** Autovacuum/autoanalyze runs on t that finished during the step (a lock holder DDL waits behind). */
  readonly autovacuums: number;
  readonly verified: boolean;
}

async function query<T extends pg.QueryResultRow>(client: pg.Client, text: string, values: unknown[] = []): Promise<T[]> {
  return (await client.query<T>(text, values)).rows;
}

async function createTables(admin: pg.Client, log: (message: string) => void): Promise<void> {
  const started = performance.now();
  await admin.query(`create table p (id bigint primary key, label text not null)`);
  await admin.query(`insert into p select g, 'parent ' || g from generate_series(1, ${PARENTS}) g`);
  await admin.query(`create table t (
    id bigint generated by default as identity primary key,
    name text not null,
    score integer,
    parent_id bigint
  )`);
  await admin.query(`insert into t (name, score, parent_id) select 'row ' || g, g % 1000, 1 + g % ${PARENTS} from generate_series(1, ${ROWS}) g`);
  await admin.query('vacuum analyze t');
  await admin.query('vacuum analyze p');
  log(`table t: ${ROWS} rows, filled in ${formatMs(performance.now() - started)}`);
}

async function autovacuumCount(admin: pg.Client): Promise<number> {
  const rows = await query<{ n: number }>(admin, `select (autovacuum_count + autoanalyze_count)::int as n from pg_stat_user_tables where relname = 't'`);
  return rows[0]?.n ?? 0;
}

/**
 * `begin; select … from t limit 1;` on its own connection, committed after `holdMs`. Returns
 * once the lock is held; `done` settles when the reader has committed (wrapped in an object,
 * because an async function that returns a promise would wait for it).
 */
async function holdReader(url: string, holdMs: number): Promise<{ readonly done: Promise<void> }> {
  const reader = new pg.Client({ connectionString: url, application_name: 'outageless-bench-reader' });
  await reader.connect();
  await reader.query('begin');
  await reader.query('select id from t limit 1');
  const done = (async () => {
    await sleep(holdMs);
    await reader.query('commit');
    await reader.end();
  })();
  return { done };
}

async function runStep(
  url: string,
  admin: pg.Client,
  traffic: Traffic,
  ddl: DdlCase,
  mode: Mode,
  createSchemaHelpers: (db: Kysely<any>, options?: SchemaHelperOptions) => SchemaHelpers,
): Promise<StepResult> {
  await sleep(BASELINE_MS);
  const baselineEnd = performance.now();
  const baseline = windowStats(traffic.samples, baselineEnd - BASELINE_MS, baselineEnd);
  const [{ max }] = (await query<{ max: string }>(admin, 'select max(id)::text as max from t')) as [{ max: string }];
  const autovacuumsBefore = await autovacuumCount(admin);

  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2, application_name: 'outageless-bench-step' }) }) });
  const client = new pg.Client({ connectionString: url, application_name: 'outageless-bench-naive' });
  await client.connect();
  const reader = ddl.reader ? await holdReader(url, READER_MS) : undefined;
  let failure: string | undefined;
  const retries = new Map<string, number>();
  const onRetry = (what: string) => void retries.set(what, (retries.get(what) ?? 0) + 1);
  const started = performance.now();
  try {
    if (mode === 'online') {
      await ddl.online.run(createSchemaHelpers(db, { ...ddl.online.options, onRetry }));
    } else {
      if (ddl.naive.transaction) await client.query('begin');
      for (const statement of ddl.naive.statements) await client.query(statement);
      if (ddl.naive.transaction) await client.query('commit');
    }
  } catch (error) {
    const { code, message } = error as { code?: string; message?: string };
    failure = `${code ?? 'error'}: ${message ?? String(error)}`;
    if (mode === 'naive' && ddl.naive.transaction) await client.query('rollback').catch(() => {});
  }
  const ended = performance.now();
  await reader?.done;
  await sleep(SETTLE_MS);
  await client.end();
  await db.destroy();

  const stats = windowStats(traffic.samples, started, ended, performance.now());
  const autovacuums = (await autovacuumCount(admin)) - autovacuumsBefore;
  const verified = failure === undefined && ((await query<{ ok: boolean }>(admin, ddl.verify, ddl.verify.includes('$1') ? [max] : []))[0]?.ok ?? false);
  for (const statement of ddl.undo) await admin.query(statement);
  await admin.query('vacuum analyze t');
  return { caseName: ddl.name, mode, wallMs: ended - started, stats, baseline, ...(failure === undefined ? {} : { failure }), retries, autovacuums, verified };
}

function describe(result: StepResult): string {
  const s = result.stats;
  const errors = s.errors === 0 ? '0 errors' : `${s.errors} errors (${[...s.errorMessages].map(([m, n]) => `${n}× ${m}`).join('; ')})`;
  const outcome = result.failure ? `FAILED (${result.failure})` : result.verified ? 'change verified' : 'CHANGE NOT FOUND after the step';
  const retried = result.mode === 'naive' ? '' : result.retries.size === 0
    ? '; no lock-timeout retries'
    : `; lock-timeout retries: ${[...result.retries].map(([what, n]) => `${n}× ${what}`).join(', ')}`;
  return `${result.mode}: wall ${formatMs(result.wallMs)}, longest request ${formatMs(s.longestMs)} (read ${formatMs(s.longestByKind.read)}, update ${formatMs(s.longestByKind.update)}, insert ${formatMs(s.longestByKind.insert)}), longest gap between completions ${formatMs(s.longestGapMs)}, ` +
    `${s.over250} of ${s.requests} requests > ${STALL_TARGET_MS} ms, ${errors}; ${outcome}${retried}${result.autovacuums > 0 ? `; autovacuum/autoanalyze ran on t during it (${result.autovacuums}×)` : ''}`;
}

/** The side-by-side table for BENCHMARKS.md, printed by the run. */
function sideBySide(results: readonly StepResult[]): string {
  const cell = (r: StepResult | undefined) => (r ? [formatMs(r.stats.longestMs), String(r.stats.over250), formatMs(r.stats.longestGapMs), formatMs(r.wallMs), String(r.stats.errors)] : ['—', '—', '—', '—', '—']);
  const header = ['case', 'online: longest stall', '> 250 ms', 'longest gap', 'wall', 'errors', 'lock retries', 'naive: longest stall', '> 250 ms', 'longest gap', 'wall', 'errors'];
  const rows = CASES.map((ddl) => {
    const online = results.find((r) => r.caseName === ddl.name && r.mode === 'online');
    const naive = results.find((r) => r.caseName === ddl.name && r.mode === 'naive');
    const flag = online && (online.failure || !online.verified) ? ' (online step failed or did not apply)' : '';
    const retries = online ? String([...online.retries.values()].reduce((sum, n) => sum + n, 0)) : '—';
    return [`${ddl.name}${flag}`, ...cell(online), retries, ...cell(naive)];
  });
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export default defineBenchmark({
  name: 'online-ddl',
  title: 'Online DDL helpers vs naive DDL under traffic',
  description:
    `A table t of ${ROWS} rows (and a parent p of ${PARENTS}) in a fresh PostgreSQL database, under steady old-code traffic: ${RATE} requests/s ` +
    `open-loop over a pg Pool of ${CONNECTIONS} (half point reads by id, 30% single-row updates, 20% inserts, naming only the columns the table had before any step). ` +
    'Each case runs the `createSchemaHelpers(db)` helper (db not in a transaction, as an online step gets it), is undone, then the same DDL the naive way, is undone. ' +
    'Stall = the longest single request overlapping the step; also the count of requests over 250 ms, the longest gap between completions, the step\'s wall time. ' +
    `The lock-queue case holds \`begin; select … from t limit 1\` open for ${READER_MS / 1000} s on another session during the step. ` +
    `Targets: **longest stall ≤ ${STALL_TARGET_MS} ms for every online helper**; **0 errors from old-code traffic** during online steps.`,

  async run(context) {
    const { log } = context;
    const { createSchemaHelpers } = (await import(pathToFileURL(join(REPO, 'dist', 'schema', 'index.js')).href)) as typeof import('../src/schema/index.ts');
    const database = await createBenchDatabase(context.serverUrl);
    const admin = new pg.Client({ connectionString: database.url, application_name: 'outageless-bench-admin' });
    let traffic: Traffic | undefined;
    const results: StepResult[] = [];
    try {
      await admin.connect();
      await createTables(admin, log);
      traffic = startTraffic(database.url, { table: 't', rows: ROWS, ratePerSecond: RATE, connections: CONNECTIONS });
      const trafficStarted = performance.now();
      await sleep(2000); // connections open, plans cached
      for (const ddl of CASES) {
        for (const mode of ['online', 'naive'] as const) {
          log(`${ddl.name}, ${mode}…`);
          const result = await runStep(database.url, admin, traffic, ddl, mode, createSchemaHelpers);
          results.push(result);
          log(`${ddl.name}, ${describe(result)}`);
        }
      }
      const trafficMs = performance.now() - trafficStarted;
      const issued = traffic.samples.length;
      await traffic.stop();
      traffic = undefined;
      const table = sideBySide(results);
      log(`side by side:\n${table}`);

      const queries = oldCodeQueries('t');
      const baselineMax = Math.max(...results.map((r) => r.baseline.longestMs));
      const online = results.filter((r) => r.mode === 'online');
      const onlineErrors = online.reduce((sum, r) => sum + r.stats.errors, 0);
      const timings: Timing[] = results.map((r) => {
        const ddl = CASES.find((c) => c.name === r.caseName)!;
        const command = r.mode === 'online' ? ddl.online.call : `${ddl.naive.transaction ? 'begin; ' : ''}${ddl.naive.statements.join('; ')}${ddl.naive.transaction ? '; commit' : ''}`;
        const label = `${r.caseName}, ${r.mode}: longest stall (${r.stats.over250} requests > ${STALL_TARGET_MS} ms, wall ${formatMs(r.wallMs)})`;
        return { label, command, runs: 1, median: r.stats.longestMs, p90: r.stats.longestMs, min: r.stats.longestMs };
      });
      const targets: TargetCheck[] = online.map((r) => ({
        label: `${r.caseName}, online: longest stall`,
        target: `≤ ${STALL_TARGET_MS} ms`,
        measured: r.failure ? `${formatMs(r.stats.longestMs)}, but the step failed` : r.verified ? formatMs(r.stats.longestMs) : `${formatMs(r.stats.longestMs)}, but the change is missing`,
        met: r.stats.longestMs <= STALL_TARGET_MS && !r.failure && r.verified,
      }));
      targets.push({ label: 'old-code traffic errors during online steps', target: '0', measured: String(onlineErrors), met: onlineErrors === 0 });
      return {
        name: 'online-ddl',
        title: 'Online DDL helpers vs naive DDL under traffic',
        setup: [
          `table t: ${ROWS} rows (id bigint identity primary key, name text, score integer, parent_id bigint), parent p: ${PARENTS} rows`,
          `traffic: ${issued} requests in ${formatMs(trafficMs)} (${(issued / (trafficMs / 1000)).toFixed(0)}/s) over a pg Pool of ${CONNECTIONS}: \`${queries.read}\`, \`${queries.update}\`, \`${queries.insert}\``,
          `noise floor: longest request in the ${formatMs(BASELINE_MS)} before each step, worst of all steps: ${formatMs(baselineMax)}`,
          ...results.map((r) => `${r.caseName}, ${describe(r)}`),
          `one run of each; the lock-queue case's reader holds ACCESS SHARE for ${formatMs(READER_MS)}; its online step gets lockWaitMs ${LOCK_QUEUE_WAIT_MS}, every other helper the defaults`,
        ],
        timings,
        targets,
      };
    } finally {
      await traffic?.stop();
      await admin.end().catch(() => {});
      await database.drop();
    }
  },
});
