/**
 * The contract between `bench/run.ts` and each benchmark file. A benchmark is a module
 * directly in `bench/` whose default export comes from {@link defineBenchmark}.
 */

/** Timing summary of one measured command, in milliseconds. */
export interface Timing {
  readonly label: string;
  /** The command line as a reader would type it (paths shortened). */
  readonly command: string;
  readonly runs: number;
  readonly median: number;
  readonly p90: number;
  readonly min: number;
}

/** A target a benchmark checks, e.g. "under 300 ms above the bare Node start". */
export interface TargetCheck {
  readonly label: string;
  readonly target: string;
  /** The measured value, formatted (e.g. "212 ms"). */
  readonly measured: string;
  readonly met: boolean;
}

/** A phase of a breakdown (median over a few runs), e.g. "discoverSite". */
export interface Phase {
  readonly label: string;
  readonly median: number;
}

export interface BenchmarkResult {
  readonly name: string;
  readonly title: string;
  /** Facts about the setup (site size, install time…), one line each. */
  readonly setup: readonly string[];
  readonly timings: readonly Timing[];
  readonly targets: readonly TargetCheck[];
  /** Where the time goes inside one command, when the benchmark measures it. */
  readonly breakdown?: { readonly title: string; readonly phases: readonly Phase[] };
}

export interface BenchmarkContext {
  /** Measured runs per command (after warmups). */
  readonly runs: number;
  readonly warmups: number;
  /** PostgreSQL server URL; benchmarks create and drop their own database on it. */
  readonly serverUrl: string;
  readonly log: (message: string) => void;
}

export interface Benchmark {
  readonly name: string;
  readonly title: string;
  /** One paragraph for BENCHMARKS.md: what is measured and against which target. */
  readonly description: string;
  run(context: BenchmarkContext): Promise<BenchmarkResult>;
}

export function defineBenchmark(benchmark: Benchmark): Benchmark {
  return benchmark;
}
