/**
 * Planning on a large site: how long `outageless upgrade --is-pending` and
 * `--is-maintenance-required` take on sites of 500 and 2,000 components with a tenth of them
 * pending, compared with the bare start of the same Node binary, without the discovery cache
 * (cold: the cache file is deleted before each run) and with it (warm: the cache the previous
 * run left), and how the cost grows per component between the two sizes.
 *
 * Target: warm, at 500 components, under 300 ms above the bare Node start (median minus median).
 */
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createBenchDatabase } from './support/postgres.ts';
import { expectExit, runNode, type ProcessResult } from './support/process.ts';
import { generateSite, REPO } from './support/site.ts';
import { formatMs, median, min, percentile } from './support/stats.ts';
import { defineBenchmark, type Phase, type TargetCheck, type Timing } from './support/types.ts';

const SIZES = [500, 2000] as const;
/** The size the target applies to. */
const TARGET_SIZE = 500;
/** Every BUMP_EVERY-th plugin gets a new version: 50 of 499, 200 of 1,999. */
const BUMP_EVERY = 10;
const TARGET_OVERHEAD_MS = 300;
const BREAKDOWN_RUNS = 5;
const BIN = join(REPO, 'bin', 'outageless.js');

interface Measured {
  readonly label: string;
  readonly args: readonly string[];
  readonly expectedExit: number;
  /** Runs just before the command, outside its time: deleting the cache for a cold run. */
  readonly before?: () => Promise<void>;
}

/** One size's medians, by command label. */
type SizeResult = { readonly size: number; readonly timings: readonly Timing[]; readonly bare: number; readonly setup: readonly string[]; readonly phases?: readonly Phase[] };

export default defineBenchmark({
  name: 'plan',
  title: `Planning on sites of ${SIZES.join(' and ')} components`,
  description:
    `Generates sites of ${SIZES.join(' and ')} components (core plus plugins of types theme, auth, format, block, mod and local, ` +
    'each with version.ts, a one-table db/schema.ts and a db/upgrade.ts of three additive steps), installs each into a fresh ' +
    `PostgreSQL database, then bumps every ${BUMP_EVERY}th plugin: half code-only, half with a db/ change and a new step ` +
    "declared `outage: 'none'`. It then times, interleaved round-robin, the bare start of the same Node binary " +
    '(`node -e 0`), `upgrade --is-pending` (must exit 2) and `upgrade --is-maintenance-required` (must exit 3), each ' +
    'cold (the discovery cache and the import-check cache in `<root>/.outageless/` deleted before the run, so every version.ts is imported and every step file checked) ' +
    'and warm (the cache the previous run left). ' +
    `It checks the target: **warm, at ${TARGET_SIZE} components, each command under ${TARGET_OVERHEAD_MS} ms above the bare Node start** ` +
    `(median minus median), and reports the growth per component between ${SIZES[0]} and ${SIZES[1]} (difference of the overheads ` +
    `over the difference of the sizes). A breakdown of warm \`--is-pending\` at ${TARGET_SIZE} (bench/support/phases.ts, median of ${BREAKDOWN_RUNS} runs) shows where the time goes.`,

  async run(context) {
    const results: SizeResult[] = [];
    for (const size of SIZES) results.push(await measureSize(size, context));

    const timings = results.flatMap((result) => result.timings);
    const [small, large] = results as [SizeResult, SizeResult];
    const overhead = (result: SizeResult, label: string) => result.timings.find((timing) => timing.label === label)!.median - result.bare;
    const labelsOf = (result: SizeResult) => result.timings.filter((timing) => !timing.label.includes('bare Node start')).map((timing) => timing.label);
    const targets: TargetCheck[] = labelsOf(small)
      .filter((label) => label.includes('warm'))
      .map((label) => ({
        label: `${label}: overhead over bare Node (median − median)`,
        target: `< ${TARGET_OVERHEAD_MS} ms`,
        measured: formatMs(overhead(small, label)),
        met: overhead(small, label) < TARGET_OVERHEAD_MS,
      }));
    const growth = labelsOf(small).map((label) => {
      const largeLabel = label.replace(`${small.size}:`, `${large.size}:`);
      const perComponent = (overhead(large, largeLabel) - overhead(small, label)) / (large.size - small.size);
      return `growth per component, ${label.replace(`${small.size}: `, '')}: ${perComponent.toFixed(3)} ms ` +
        `(${formatMs(overhead(small, label))} over bare Node at ${small.size}, ${formatMs(overhead(large, largeLabel))} at ${large.size})`;
    });
    return {
      name: 'plan',
      title: `Planning on sites of ${SIZES.join(' and ')} components`,
      setup: [
        ...results.flatMap((result) => result.setup),
        `${context.runs} measured runs per command after ${context.warmups} warmup round(s), interleaved round-robin (the first command rotates each round)`,
        ...growth,
      ],
      timings,
      targets,
      ...(small.phases ? { breakdown: { title: `warm \`upgrade --is-pending\` at ${small.size} components inside one process, then probes of discovery each in a fresh process (median of ${BREAKDOWN_RUNS} runs)`, phases: small.phases } } : {}),
    };
  },
});

async function measureSize(size: number, context: Parameters<ReturnType<typeof defineBenchmark>['run']>[0]): Promise<SizeResult> {
  const { log } = context;
  log(`generating a site of ${size} components`);
  const site = await generateSite(size);
  const database = await createBenchDatabase(context.serverUrl);
  const siteArgs = ['--root', site.root, '--database', database.url];
  // Both caches: cold means every version.ts imported and every step file checked in the worker.
  const caches = ['discovery-cache.json', 'import-check-cache.json'].map((file) => join(site.root, '.outageless', file));
  try {
    log(`installing it into ${database.name}`);
    const install = await runNode([BIN, 'upgrade', '--non-interactive', ...siteArgs]);
    expectExit(install, 0, 'install');
    expectExit(await runNode([BIN, 'upgrade', '--is-pending', ...siteArgs]), 0, '--is-pending right after the install');

    // Plugins are components 1…size-1: bump plugin 0, 10, 20, … (a tenth of them), never core.
    const bumped = site.components.filter((_, index) => index > 0 && (index - 1) % BUMP_EVERY === 0);
    const dbChanged = bumped.filter((_, index) => index % 2 === 1);
    await Promise.all(bumped.map((component) => site.write(component, dbChanged.includes(component) ? 'db-bump' : 'code-bump')));
    log(`bumped ${bumped.length} components (${dbChanged.length} with a db/ change)`);

    const cold = async () => {
      for (const cache of caches) await rm(cache, { force: true });
    };
    const commands: Measured[] = [
      { label: `${size}: bare Node start`, args: ['-e', '0'], expectedExit: 0 },
      { label: `${size}: upgrade --is-pending, cold`, args: [BIN, 'upgrade', '--is-pending', ...siteArgs], expectedExit: 2, before: cold },
      { label: `${size}: upgrade --is-pending, warm`, args: [BIN, 'upgrade', '--is-pending', ...siteArgs], expectedExit: 2 },
      { label: `${size}: upgrade --is-maintenance-required, cold`, args: [BIN, 'upgrade', '--is-maintenance-required', ...siteArgs], expectedExit: 3, before: cold },
      { label: `${size}: upgrade --is-maintenance-required, warm`, args: [BIN, 'upgrade', '--is-maintenance-required', ...siteArgs], expectedExit: 3 },
    ];
    const samples = await roundRobin(commands, context.warmups, context.runs, log);
    const timings = commands.map((command, index): Timing => summarize(command, samples[index]!, site.root, database.url));

    let phases: Phase[] | undefined;
    if (size === TARGET_SIZE) {
      log(`breakdown: ${BREAKDOWN_RUNS} rounds of bench/support/phases.ts`);
      phases = await breakdown(site.root, database.url);
    }
    return {
      size,
      timings,
      bare: timings[0]!.median,
      setup: [
        `${size}: ${site.components.length} components (core + ${site.components.length - 1} plugins), ${site.components.length} tables; ` +
          `${bumped.length} pending: ${bumped.length - dbChanged.length} code-only, ${dbChanged.length} with a db/ change and a new step; ` +
          `install of the site (one run, not the subject of a target): ${formatMs(install.wallMs)}`,
      ],
      ...(phases ? { phases } : {}),
    };
  } finally {
    await database.drop();
    await site.cleanup();
  }
}

/**
 * Runs every command `warmups + runs` times, one of each per round, rotating which goes first
 * so load drift and cache effects fall on all of them alike. Returns the measured wall times
 * per command; a wrong exit code fails the benchmark.
 */
async function roundRobin(commands: readonly Measured[], warmups: number, runs: number, log: (message: string) => void): Promise<number[][]> {
  const samples = commands.map((): number[] => []);
  for (let round = 0; round < warmups + runs; round++) {
    const measured = round >= warmups;
    const times: number[] = [];
    for (let offset = 0; offset < commands.length; offset++) {
      const index = (round + offset) % commands.length;
      const command = commands[index]!;
      await command.before?.();
      const result: ProcessResult = await runNode(command.args);
      expectExit(result, command.expectedExit, command.label);
      times[index] = result.wallMs;
      if (measured) samples[index]!.push(result.wallMs);
    }
    const label = measured ? `run ${round - warmups + 1}/${runs}` : `warmup ${round + 1}/${warmups}`;
    log(`${label}: ${commands.map((command, index) => `${command.label} ${formatMs(times[index]!)}`).join(', ')}`);
  }
  return samples;
}

function summarize(command: Measured, samples: readonly number[], root: string, databaseUrl: string): Timing {
  const shown = command.args
    .map((arg) => (arg === root ? '<site>' : arg === databaseUrl ? '<db>' : arg.startsWith(REPO) ? relative(REPO, arg) : arg))
    .join(' ');
  return { label: command.label, command: `node ${shown}`, runs: samples.length, median: median(samples), p90: percentile(samples, 90), min: min(samples) };
}

/** The modes of bench/support/phases.ts: the CLI's own phases, then probes of discovery's two halves. */
const PHASE_MODES = ['cli', 'import-parallel', 'import-sequential', 'hash'] as const;

/** Runs every mode of phases.ts BREAKDOWN_RUNS times, round-robin, each in a fresh process; medians per phase. */
async function breakdown(root: string, databaseUrl: string): Promise<Phase[]> {
  const samples = new Map<string, number[]>();
  for (let round = 0; round < BREAKDOWN_RUNS; round++) {
    for (const mode of PHASE_MODES) {
      const result = await runNode([join(REPO, 'bench', 'support', 'phases.ts'), mode, root, databaseUrl]);
      expectExit(result, 0, `bench/support/phases.ts ${mode}`);
      for (const [label, ms] of Object.entries(JSON.parse(result.stdout) as Record<string, number>)) {
        samples.set(label, [...(samples.get(label) ?? []), ms]);
      }
    }
  }
  return [...samples].map(([label, values]) => ({ label, median: median(values) }));
}
