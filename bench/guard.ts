/**
 * Guard overhead: requests/s of a trivial host route (GET /hello → 'ok') in a Fastify app with
 * the outageless plugin registered on an installed site, against the same app without it.
 * Both run as child processes of the same script; autocannon drives them interleaved.
 *
 * Target: guarded / plain ≥ 0.97 (median req/s over the rounds).
 */
import { join } from 'node:path';
import autocannon from 'autocannon';
import { createBenchDatabase } from './support/postgres.ts';
import { expectExit, runNode } from './support/process.ts';
import { BIN, copyRelease, startServed, tempSite, type ServedProcess } from './support/serve.ts';
import { median } from './support/stats.ts';
import { defineBenchmark } from './support/types.ts';

const ROUNDS = Number(process.env.BENCH_GUARD_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_GUARD_SECONDS ?? 5);
const CONNECTIONS = 32;
const TARGET_RATIO = 0.97;
const SERVER = join(import.meta.dirname, 'support', 'hello-server.ts');

async function load(url: string, duration: number): Promise<{ rps: number; non2xx: number; errors: number }> {
  const result = await autocannon({ url: `${url}/hello`, connections: CONNECTIONS, duration });
  return { rps: result.requests.average, non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

export default defineBenchmark({
  name: 'guard',
  title: 'Guard overhead on a trivial route',
  description:
    "Two child processes of bench/support/hello-server.ts, each a Fastify app on 127.0.0.1 serving GET /hello → 'ok': one plain, " +
    'one with `app.register(outageless, { root, database })` on examples/lms/releases/2 installed into a fresh PostgreSQL database ' +
    '(every component mounted, jobs on), /hello registered in the host app so the guard runs for it as core\'s. ' +
    `autocannon (${CONNECTIONS} connections) loads them interleaved, plain then guarded, ${ROUNDS} rounds of ${SECONDS} s each after a 2 s warmup of each, ` +
    `and checks the target: **guarded req/s ≥ ${TARGET_RATIO} × plain req/s** (median over the rounds).`,

  async run(context) {
    const { log } = context;
    const site = await tempSite('outageless-bench-guard-');
    const database = await createBenchDatabase(context.serverUrl);
    const servers: ServedProcess[] = [];
    try {
      await copyRelease(site.root, '2');
      log(`installing examples/lms/releases/2 into ${database.name}`);
      expectExit(await runNode([BIN, 'upgrade', '--non-interactive', '--root', site.root, '--database', database.url]), 0, 'install');
      const plain = await startServed([SERVER, 'plain'], '/hello');
      servers.push(plain);
      const guarded = await startServed([SERVER, 'guarded', site.root, database.url], '/hello');
      servers.push(guarded);
      const variants = [{ label: 'plain Fastify', server: plain }, { label: 'Fastify + outageless', server: guarded }];
      for (const variant of variants) await load(variant.server.url, 2);
      const samples: number[][] = [[], []];
      let bad = 0;
      for (let round = 0; round < ROUNDS; round++) {
        for (const [index, variant] of variants.entries()) {
          const result = await load(variant.server.url, SECONDS);
          bad += result.non2xx + result.errors;
          samples[index]!.push(result.rps);
        }
        log(`round ${round + 1}/${ROUNDS}: ${variants.map((v, i) => `${v.label} ${Math.round(samples[i]!.at(-1)!)} req/s`).join(', ')}`);
      }
      if (bad > 0) throw new Error(`${bad} non-2xx responses or errors under load`);
      const [plainRps, guardedRps] = samples.map((values) => median(values)) as [number, number];
      const ratio = guardedRps / plainRps;
      // Timings are in ms: show the mean time per request at that rate per connection.
      const timing = (label: string, values: number[], command: string) => {
        const perRequest = values.map((rps) => (1000 * CONNECTIONS) / rps);
        const sorted = [...perRequest].sort((a, b) => a - b);
        return { label: `${label}: ms per request per connection (${CONNECTIONS} connections)`, command, runs: values.length, median: median(perRequest), p90: sorted.at(-1)!, min: sorted[0]! };
      };
      return {
        name: 'guard',
        title: 'Guard overhead on a trivial route',
        setup: [
          `plain Fastify: median ${Math.round(plainRps)} req/s (rounds: ${samples[0]!.map(Math.round).join(', ')})`,
          `Fastify + outageless: median ${Math.round(guardedRps)} req/s (rounds: ${samples[1]!.map(Math.round).join(', ')})`,
          `ratio guarded / plain: ${ratio.toFixed(3)}`,
          `autocannon ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds × ${SECONDS} s per variant, all responses 200`,
        ],
        timings: [
          timing('plain Fastify', samples[0]!, 'node bench/support/hello-server.ts plain'),
          timing('Fastify + outageless', samples[1]!, 'node bench/support/hello-server.ts guarded <site> <db>'),
        ],
        targets: [{ label: 'guarded req/s ÷ plain req/s (median of rounds)', target: `≥ ${TARGET_RATIO}`, measured: ratio.toFixed(3), met: ratio >= TARGET_RATIO }],
      };
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      await database.drop();
      await site.cleanup();
    }
  },
});
