/**
 * Planning on a large site: how long `outageless upgrade --is-pending` and
 * `--is-maintenance-required` take on a 500-component site with ~50 components pending,
 * compared with the bare start of the same Node binary.
 *
 * Target: under 300 ms above the bare Node start (median minus median).
 */
import { join, relative } from 'node:path';
import { createBenchDatabase } from './support/postgres.ts';
import { expectExit, runNode, type ProcessResult } from './support/process.ts';
import { generateSite, REPO } from './support/site.ts';
import { formatMs, median, min, percentile } from './support/stats.ts';
import { defineBenchmark, type Phase, type Timing } from './support/types.ts';

const SITE_SIZE = 500;
/** Every BUMP_EVERY-th plugin gets a new version: 50 of 499. */
const BUMP_EVERY = 10;
const TARGET_OVERHEAD_MS = 300;
const BREAKDOWN_RUNS = 5;
const BIN = join(REPO, 'bin', 'outageless.js');

interface Measured {
  readonly label: string;
  readonly args: readonly string[];
  readonly expectedExit: number;
}

export default defineBenchmark({
  name: 'plan',
  title: `Planning on a ${SITE_SIZE}-component site`,
  description:
    `Generates a site of ${SITE_SIZE} components (core plus plugins of types theme, auth, format, block, mod and local, ` +
    'each with version.ts, a one-table db/schema.ts and a db/upgrade.ts of three additive steps), installs it into a fresh ' +
    `PostgreSQL database, then bumps every ${BUMP_EVERY}th plugin: half code-only, half with a db/ change and a new step ` +
    "declared `outage: 'none'`. It then times, interleaved round-robin, the bare start of the same Node binary " +
    '(`node -e 0`), `upgrade --is-pending` (must exit 2) and `upgrade --is-maintenance-required` (must exit 3), ' +
    `and checks the target: **each command under ${TARGET_OVERHEAD_MS} ms above the bare Node start** (median minus median). ` +
    `A breakdown of \`--is-pending\` (bench/support/phases.ts, median of ${BREAKDOWN_RUNS} runs) shows where the time goes.`,

  async run(context) {
    const { log } = context;
    log(`generating a site of ${SITE_SIZE} components`);
    const site = await generateSite(SITE_SIZE);
    const database = await createBenchDatabase(context.serverUrl);
    const siteArgs = ['--root', site.root, '--database', database.url];
    try {
      log(`installing it into ${database.name}`);
      const install = await runNode([BIN, 'upgrade', '--non-interactive', ...siteArgs]);
      expectExit(install, 0, 'install');
      expectExit(await runNode([BIN, 'upgrade', '--is-pending', ...siteArgs]), 0, '--is-pending right after the install');

      // Plugins are components 1…499: bump plugin 0, 10, 20, … (50 of them), never core.
      const bumped = site.components.filter((_, index) => index > 0 && (index - 1) % BUMP_EVERY === 0);
      const dbChanged = bumped.filter((_, index) => index % 2 === 1);
      await Promise.all(bumped.map((component) => site.write(component, dbChanged.includes(component) ? 'db-bump' : 'code-bump')));
      log(`bumped ${bumped.length} components (${dbChanged.length} with a db/ change)`);

      const commands: Measured[] = [
        { label: 'bare Node start', args: ['-e', '0'], expectedExit: 0 },
        { label: 'upgrade --is-pending', args: [BIN, 'upgrade', '--is-pending', ...siteArgs], expectedExit: 2 },
        { label: 'upgrade --is-maintenance-required', args: [BIN, 'upgrade', '--is-maintenance-required', ...siteArgs], expectedExit: 3 },
      ];
      const samples = await roundRobin(commands, context.warmups, context.runs, log);
      const timings = commands.map((command, index): Timing => summarize(command, samples[index]!, site.root, database.url));
      const bare = timings[0]!;

      log(`breakdown: ${BREAKDOWN_RUNS} rounds of bench/support/phases.ts`);
      const phases = await breakdown(site.root, database.url);

      return {
        name: 'plan',
        title: `Planning on a ${SITE_SIZE}-component site`,
        setup: [
          `${site.components.length} components (core + ${site.components.length - 1} plugins), ${site.components.length} tables; ` +
            `${bumped.length} pending: ${bumped.length - dbChanged.length} code-only, ${dbChanged.length} with a db/ change and a new step`,
          `install of the site (one run, not the subject of a target): ${formatMs(install.wallMs)}`,
          `${context.runs} measured runs per command after ${context.warmups} warmup round(s), interleaved round-robin (the first command rotates each round)`,
        ],
        timings,
        targets: timings.slice(1).map((timing) => {
          const overhead = timing.median - bare.median;
          return {
            label: `${timing.label}: overhead over bare Node (median − median)`,
            target: `< ${TARGET_OVERHEAD_MS} ms`,
            measured: formatMs(overhead),
            met: overhead < TARGET_OVERHEAD_MS,
          };
        }),
        breakdown: { title: `\`upgrade --is-pending\` inside one process, then probes of discovery each in a fresh process (median of ${BREAKDOWN_RUNS} runs)`, phases },
      };
    } finally {
      await database.drop();
      await site.cleanup();
    }
  },
});

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
