/**
 * State propagation: how long after `outageless maintenance enable` exits both fronts of a
 * site answer 503, and after `maintenance disable` exits both answer 200 again.
 *
 * Target: p99 under 100 ms on PostgreSQL (clock starts when the CLI process exits).
 */
import { performance } from 'node:perf_hooks';
import { createBenchDatabase } from './support/postgres.ts';
import { expectExit, runNode } from './support/process.ts';
import { BIN, copyRelease, sleep, startFront, tempSite, type ServedProcess } from './support/serve.ts';
import { formatMs, median, min, percentile } from './support/stats.ts';
import { defineBenchmark } from './support/types.ts';

const REPEATS = Number(process.env.BENCH_PROPAGATION_REPEATS ?? 40);
const TARGET_P99_MS = 100;
const ROUTE = '/mod_assign/';
const GIVE_UP_MS = 10_000;

async function status(url: string): Promise<number> {
  try {
    const response = await fetch(`${url}${ROUTE}`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return -1;
  }
}

/** Polls every front in a tight loop until each has answered `expected`; ms from `since` to the last front's first `expected`. */
async function until(fronts: readonly ServedProcess[], expected: number, since: number): Promise<number> {
  const reached = await Promise.all(fronts.map(async (front) => {
    for (;;) {
      if ((await status(front.url)) === expected) return performance.now();
      if (performance.now() - since > GIVE_UP_MS) throw new Error(`${front.url}${ROUTE} did not answer ${expected} within ${GIVE_UP_MS} ms`);
    }
  }));
  return Math.max(...reached) - since;
}

export default defineBenchmark({
  name: 'propagation',
  title: 'Maintenance state propagation to two fronts',
  description:
    'Installs examples/lms/releases/2 into a fresh PostgreSQL database and starts two `outageless serve` fronts on it. ' +
    `${REPEATS} times: runs \`outageless maintenance enable\` as a child process and, from the moment it exits, polls ` +
    `GET ${ROUTE} on both fronts in a tight fetch loop until both answer 503; then \`maintenance disable\` and the same until both answer 200. ` +
    `Target: **p99 under ${TARGET_P99_MS} ms** from the CLI's exit to the last front's change, for enable and for disable.`,

  async run(context) {
    const { log } = context;
    const site = await tempSite('outageless-bench-propagation-');
    const database = await createBenchDatabase(context.serverUrl);
    const fronts: ServedProcess[] = [];
    const siteArgs = ['--root', site.root, '--database', database.url];
    try {
      await copyRelease(site.root, '2');
      log(`installing examples/lms/releases/2 into ${database.name}`);
      expectExit(await runNode([BIN, 'upgrade', '--non-interactive', ...siteArgs]), 0, 'install');
      fronts.push(await startFront(site.root, database.url), await startFront(site.root, database.url));
      if ((await until(fronts, 200, performance.now())) > 1000) throw new Error(`${ROUTE} does not answer 200`);
      const enable: number[] = [];
      const disable: number[] = [];
      const cli: number[] = [];
      for (let i = 0; i < REPEATS; i++) {
        const on = await runNode([BIN, 'maintenance', 'enable', ...siteArgs]);
        const onExit = performance.now();
        expectExit(on, 0, 'maintenance enable');
        enable.push(await until(fronts, 503, onExit));
        cli.push(on.wallMs);
        const off = await runNode([BIN, 'maintenance', 'disable', ...siteArgs]);
        const offExit = performance.now();
        expectExit(off, 0, 'maintenance disable');
        disable.push(await until(fronts, 200, offExit));
        cli.push(off.wallMs);
        if ((i + 1) % 10 === 0) log(`${i + 1}/${REPEATS}: last enable ${formatMs(enable.at(-1)!)}, disable ${formatMs(disable.at(-1)!)}`);
        await sleep(50);
      }
      const timing = (label: string, values: number[], command: string) => ({ label, command, runs: values.length, median: median(values), p90: percentile(values, 90), min: min(values) });
      const p99Enable = percentile(enable, 99);
      const p99Disable = percentile(disable, 99);
      return {
        name: 'propagation',
        title: 'Maintenance state propagation to two fronts',
        setup: [
          `examples/lms/releases/2, two \`outageless serve\` fronts (default poll interval) on one PostgreSQL database; GET ${ROUTE} polled on both`,
          `${REPEATS} enable/disable cycles; clock from the CLI process's exit to the last front's first 503 (or 200)`,
          `enable → both 503: median ${formatMs(median(enable))}, p99 ${formatMs(p99Enable)}, max ${formatMs(Math.max(...enable))}`,
          `disable → both 200: median ${formatMs(median(disable))}, p99 ${formatMs(p99Disable)}, max ${formatMs(Math.max(...disable))}`,
          `the CLI itself (spawn to exit, not counted above): median ${formatMs(median(cli))}`,
        ],
        timings: [
          timing('maintenance enable exits → both fronts 503', enable, 'node bin/outageless.js maintenance enable'),
          timing('maintenance disable exits → both fronts 200', disable, 'node bin/outageless.js maintenance disable'),
          timing('the CLI process, spawn to exit (enable and disable)', cli, 'node bin/outageless.js maintenance enable, disable'),
        ],
        targets: [
          { label: 'enable: p99 from CLI exit to both fronts 503', target: `< ${TARGET_P99_MS} ms`, measured: formatMs(p99Enable), met: p99Enable < TARGET_P99_MS },
          { label: 'disable: p99 from CLI exit to both fronts 200', target: `< ${TARGET_P99_MS} ms`, measured: formatMs(p99Disable), met: p99Disable < TARGET_P99_MS },
        ],
      };
    } finally {
      await Promise.all(fronts.map((front) => front.stop()));
      await database.drop();
      await site.cleanup();
    }
  },
});
