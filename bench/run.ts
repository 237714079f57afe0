/**
 * Runs every benchmark in bench/ (each `bench/*.ts` but this file, whose default export comes
 * from defineBenchmark), prints the results, and writes them into BENCHMARKS.md between the
 * result markers, with the machine and the date.
 *
 *   npm run bench                              build, then run them all and update BENCHMARKS.md
 *   node bench/run.ts [name…] [--runs N] [--warmups N] [--no-write] [--check]
 *
 * Naming benchmarks runs only those and does not touch BENCHMARKS.md. `--check` exits 1 when
 * a target is missed (a benchmark that fails, e.g. on a wrong exit code, always exits 1).
 * PostgreSQL: BENCH_DATABASE_URL, then TEST_DATABASE_URL, then postgres://postgres@127.0.0.1:5432/postgres.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { describeMachine } from './support/machine.ts';
import { serverUrl } from './support/postgres.ts';
import { resultsMarkdown, writeResults } from './support/report.ts';
import type { Benchmark, BenchmarkResult } from './support/types.ts';

const BENCH_DIR = import.meta.dirname;
const RESULTS_FILE = join(BENCH_DIR, '..', 'BENCHMARKS.md');

function isBenchmark(value: unknown): value is Benchmark {
  const candidate = value as Partial<Benchmark> | undefined;
  return typeof candidate?.name === 'string' && typeof candidate.run === 'function';
}

async function loadBenchmarks(): Promise<Benchmark[]> {
  const files = (await readdir(BENCH_DIR)).filter((file) => file.endsWith('.ts') && file !== 'run.ts').sort();
  const benchmarks: Benchmark[] = [];
  for (const file of files) {
    const module = (await import(pathToFileURL(join(BENCH_DIR, file)).href)) as { default?: unknown };
    if (!isBenchmark(module.default)) throw new Error(`bench/${file}: the default export must come from defineBenchmark({...})`);
    benchmarks.push(module.default);
  }
  return benchmarks;
}

function count(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} expects a whole number, got "${value}"`);
  return n;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string' },
      warmups: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
    },
  });
  const runs = Math.max(1, count(values.runs, 15, '--runs'));
  const warmups = count(values.warmups, 2, '--warmups');

  const all = await loadBenchmarks();
  const unknown = positionals.filter((name) => !all.some((benchmark) => benchmark.name === name));
  if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${all.map((b) => b.name).join(', ')}`);
  const selected = positionals.length === 0 ? all : all.filter((benchmark) => positionals.includes(benchmark.name));

  const server = serverUrl();
  const machine = await describeMachine(server);
  const date = new Date();
  console.log(`outageless benchmarks: ${selected.map((b) => b.name).join(', ')} on ${machine.cpu}, Node ${machine.node}, PostgreSQL ${machine.postgres}`);

  const results: BenchmarkResult[] = [];
  for (const benchmark of selected) {
    const started = performance.now();
    console.log(`\n[${benchmark.name}] ${benchmark.title}`);
    results.push(await benchmark.run({ runs, warmups, serverUrl: server, log: (message) => console.log(`[${benchmark.name}] ${message}`) }));
    console.log(`[${benchmark.name}] done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }

  const markdown = resultsMarkdown(machine, date, results);
  console.log(`\n${markdown}\n`);
  if (values['no-write'] || positionals.length > 0) {
    console.log('BENCHMARKS.md left as it was (--no-write, or only some benchmarks ran).');
  } else {
    await writeResults(RESULTS_FILE, markdown);
    console.log('Results written to BENCHMARKS.md.');
  }

  const missed = results.flatMap((result) => result.targets.filter((target) => !target.met).map((target) => `${result.name}: ${target.label} is ${target.measured}, goal ${target.target}`));
  for (const line of missed) console.log(`TARGET MISSED: ${line}`);
  return values.check && missed.length > 0 ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
}
