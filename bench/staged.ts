/**
 * Per-component downtime: examples/lms release 3 → 4 (mod_assign pauses, class `component`),
 * once staged (`upgrade --no-maintenance`) and once in maintenance mode, each under load on two
 * fronts, with a poller per route group recording what the fronts answer.
 *
 * Targets: staged, the other components' routes never answer 503; mod_assign's 503 time is
 * within 20% of its pause as the upgrade reports it; maintenance mode for comparison.
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import pg from 'pg';
import { createBenchDatabase } from './support/postgres.ts';
import { expectExit, runNode } from './support/process.ts';
import { BIN, copyRelease, sleep, startFront, tempSite, type ServedProcess } from './support/serve.ts';
import { formatMs } from './support/stats.ts';
import { defineBenchmark } from './support/types.ts';

const FROM = '3';
const TO = '4';
const PAUSED = 'mod_assign';
const PAUSED_ROUTES = ['/mod_assign/'];
const OTHER_ROUTES = ['/mod_quiz/', '/block_news/', '/local_reports/', '/format_topics/', '/auth_manual/'];
const POLL_MS = 20;
const SETTLE_MS = 1000;

interface Sample { readonly t: number; readonly status: number }

/** Polls `url` every POLL_MS until stopped; returns the samples. */
function poller(url: string): { stop(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      let status = -1;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        status = response.status;
      } catch { /* counted as -1 */ }
      samples.push({ t: performance.now(), status });
      await sleep(POLL_MS);
    }
  })();
  return { stop: async () => { running = false; await done; return samples; } };
}

/** Time-weighted seconds of non-200 (503 or error): each bad sample counts until the next sample. */
function downMs(samples: readonly Sample[]): { ms: number; bad: number; total: number } {
  let ms = 0;
  let bad = 0;
  for (let i = 0; i < samples.length; i++) {
    if (samples[i]!.status === 200) continue;
    bad++;
    ms += i + 1 < samples.length ? samples[i + 1]!.t - samples[i]!.t : POLL_MS;
  }
  return { ms, bad, total: samples.length };
}

interface Mode {
  readonly paused: number;
  readonly other: number;
  readonly loadPaused: { ok: number; unavailable: number };
  readonly loadOther: { ok: number; unavailable: number };
  readonly json: { durationMs?: number; pauses?: { component: string; pausedMs: number }[] } | undefined;
  readonly steps: { component: string; step_id: string | null; duration_ms: number; outage: string | null }[];
  readonly upgradeMs: number;
}

async function measure(serverUrl: string, staged: boolean, log: (message: string) => void): Promise<Mode> {
  const site = await tempSite('outageless-bench-staged-');
  const database = await createBenchDatabase(serverUrl);
  const fronts: ServedProcess[] = [];
  const siteArgs = ['--root', site.root, '--database', database.url];
  try {
    await copyRelease(site.root, FROM);
    expectExit(await runNode([BIN, 'upgrade', '--non-interactive', ...siteArgs]), 0, `install of release ${FROM}`);
    // A rolling deploy: the new code reaches every front first, with the UI upgrade lock set so
    // code ahead of the database keeps serving; then the CLI runs the upgrade.
    await copyRelease(site.root, TO);
    expectExit(await runNode([BIN, 'upgrade', '--is-maintenance-required', '--set-ui-upgrade-lock', ...siteArgs]), 3, 'UI lock for the rollout');
    fronts.push(await startFront(site.root, database.url), await startFront(site.root, database.url));
    const others: string[] = [];
    for (const route of OTHER_ROUTES) {
      const response = await fetch(`${fronts[0]!.url}${route}`);
      await response.arrayBuffer();
      if (response.status === 200) others.push(route);
    }
    if (others.length === 0) throw new Error('no other component route answers 200');
    const groups = { paused: PAUSED_ROUTES, other: others };
    const loads = Object.entries(groups).flatMap(([group, routes]) => fronts.map((front) => ({
      group,
      codes: new Map<number, number>(),
      instance: autocannon({ url: `${front.url}${routes[0]}`, requests: routes.map((path) => ({ method: 'GET' as const, path })), connections: 4, duration: 600 }, () => {}),
    })));
    for (const load of loads) load.instance.on('response', (_client: unknown, statusCode: number) => load.codes.set(statusCode, (load.codes.get(statusCode) ?? 0) + 1));
    const pollers = Object.entries(groups).flatMap(([group, routes]) => fronts.flatMap((front) => routes.map((route) => ({ group, poll: poller(`${front.url}${route}`) }))));
    await sleep(SETTLE_MS);
    const args = staged ? ['upgrade', '--no-maintenance', '--non-interactive', '--json', ...siteArgs] : ['upgrade', '--non-interactive', '--json', ...siteArgs];
    log(`${staged ? 'staged' : 'maintenance mode'}: node bin/outageless.js ${args.slice(0, -4).join(' ')}`);
    const upgrade = await runNode([BIN, ...args]);
    await sleep(SETTLE_MS);
    const results = await Promise.all(pollers.map(async ({ group, poll }) => ({ group, down: downMs(await poll.stop()) })));
    for (const load of loads) load.instance.stop();
    await sleep(200);
    expectExit(upgrade, 0, 'upgrade');
    const count = (group: string) => {
      let ok = 0;
      let unavailable = 0;
      for (const load of loads.filter((l) => l.group === group)) {
        for (const [code, n] of load.codes) {
          if (code === 200) ok += n;
          else if (code === 503) unavailable += n;
        }
      }
      return { ok, unavailable };
    };
    let json: Mode['json'];
    try {
      json = JSON.parse(upgrade.stdout.slice(upgrade.stdout.indexOf('{'))) as Mode['json'];
    } catch { json = undefined; }
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const steps = (await client.query(`select component, step_id, duration_ms, outage from outageless_upgrade_log where step_id is not null order by id`)).rows as Mode['steps'];
    await client.end();
    const worst = (group: string) => Math.max(...results.filter((r) => r.group === group).map((r) => r.down.ms));
    return { paused: worst('paused'), other: worst('other'), loadPaused: count('paused'), loadOther: count('other'), json, steps, upgradeMs: upgrade.wallMs };
  } finally {
    await Promise.all(fronts.map((front) => front.stop()));
    await database.drop();
    await site.cleanup();
  }
}

export default defineBenchmark({
  name: 'staged',
  title: 'Per-component downtime: staged upgrade vs maintenance mode',
  description:
    `examples/lms/releases/${FROM} → ${TO} (${PAUSED} has a class \`component\` step and may pause on its own). Twice, each in a fresh PostgreSQL database: ` +
    `install release ${FROM}, start two \`outageless serve\` fronts, put release ${TO} on disk, load both fronts with autocannon on two route groups ` +
    `(${PAUSED}'s routes; every other component's routes), poll each route of each group on each front every ${POLL_MS} ms, and upgrade: ` +
    '(a) staged, `upgrade --no-maintenance --non-interactive --json`; (b) `upgrade --non-interactive --json` in maintenance mode. ' +
    'Downtime of a group is the time-weighted span of its non-200 samples on the worst front. Targets: **staged, other components 0 s of 503**; ' +
    `**staged, ${PAUSED}'s downtime within 20% of its reported pause** (\`pauses[].pausedMs\`).`,

  async run(context) {
    const { log } = context;
    const staged = await measure(context.serverUrl, true, log);
    const maintenance = await measure(context.serverUrl, false, log);
    const pause = staged.json?.pauses?.find((p) => p.component === PAUSED)?.pausedMs;
    const ownSteps = staged.steps.filter((s) => s.component === PAUSED || s.component.startsWith('assignsubmission_'));
    const ownStepsMs = ownSteps.reduce((sum, s) => sum + s.duration_ms, 0);
    const stepLine = (mode: Mode) => mode.steps.map((s) => `${s.component}/${s.step_id} (${s.outage}) ${s.duration_ms} ms`).join('; ') || 'none';
    const deviation = pause === undefined ? Number.NaN : (staged.paused - pause) / pause;
    const single = (label: string, ms: number, command: string) => ({ label, command, runs: 1, median: ms, p90: ms, min: ms });
    return {
      name: 'staged',
      title: 'Per-component downtime: staged upgrade vs maintenance mode',
      setup: [
        `staged: upgrade ${formatMs(staged.upgradeMs)} wall, reported pause of ${PAUSED} ${pause === undefined ? 'none' : formatMs(pause)}; steps: ${stepLine(staged)}`,
        `staged: ${PAUSED}'s own steps (with its subplugins) took ${formatMs(ownStepsMs)} in total`,
        `staged: downtime ${PAUSED} ${formatMs(staged.paused)}, other components ${formatMs(staged.other)}; load answers ${PAUSED} ${staged.loadPaused.ok}×200 / ${staged.loadPaused.unavailable}×503, others ${staged.loadOther.ok}×200 / ${staged.loadOther.unavailable}×503`,
        `maintenance mode: upgrade ${formatMs(maintenance.upgradeMs)} wall; downtime ${PAUSED} ${formatMs(maintenance.paused)}, other components ${formatMs(maintenance.other)}; load answers ${PAUSED} ${maintenance.loadPaused.ok}×200 / ${maintenance.loadPaused.unavailable}×503, others ${maintenance.loadOther.ok}×200 / ${maintenance.loadOther.unavailable}×503`,
        `one run of each mode; pollers every ${POLL_MS} ms per route per front, autocannon 4 connections per group per front`,
      ],
      timings: [
        single(`staged: ${PAUSED} downtime`, staged.paused, 'node bin/outageless.js upgrade --no-maintenance --non-interactive --json'),
        single('staged: other components downtime', staged.other, 'node bin/outageless.js upgrade --no-maintenance --non-interactive --json'),
        single('maintenance mode: site-wide downtime (other components)', maintenance.other, 'node bin/outageless.js upgrade --non-interactive --json'),
        single(`maintenance mode: ${PAUSED} downtime`, maintenance.paused, 'node bin/outageless.js upgrade --non-interactive --json'),
      ],
      targets: [
        { label: 'staged: other components\' downtime', target: '0 ms', measured: formatMs(staged.other), met: staged.other === 0 && staged.loadOther.unavailable === 0 },
        { label: `staged: ${PAUSED} downtime vs its reported pause`, target: 'within 20%', measured: pause === undefined ? 'no pause reported' : `${formatMs(staged.paused)} vs ${formatMs(pause)} (${(deviation * 100).toFixed(0)}%)`, met: Math.abs(deviation) <= 0.2 },
      ],
    };
  },
});
