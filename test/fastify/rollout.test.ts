/**
 * A rolling deploy as an operator runs it (DESIGN §4.4): an old-release front and a
 * new-release front serve one PostgreSQL database side by side while the CLI upgrades it
 * without maintenance. Real `outageless serve` processes, real HTTP load (autocannon).
 * Then, as a contrast, a maintenance upgrade with breaking changes drains the older fronts
 * from exactly the components it broke.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import autocannon from 'autocannon';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { startFront, type FrontProcess } from '../support/fronts.ts';

const V1 = 2026010100;
const V2 = 2026020100;

/** User routes that exist in both release 1 and release 2 (every component's index.ts). */
const ROUTES: Record<string, readonly string[]> = {
  core: ['/', '/health', '/about'],
  theme_clean: ['/theme_clean/', '/theme_clean/palette'],
  auth_manual: ['/auth_manual/', '/auth_manual/policy'],
  format_topics: ['/format_topics/', '/format_topics/options'],
  block_news: ['/block_news/', '/block_news/config'],
  mod_assign: ['/mod_assign/', '/mod_assign/capabilities', '/mod_assign/submission-types'],
  assignsubmission_file: ['/assignsubmission_file/', '/assignsubmission_file/limits'],
  assignsubmission_onlinetext: ['/assignsubmission_onlinetext/', '/assignsubmission_onlinetext/formats'],
  mod_quiz: ['/mod_quiz/', '/mod_quiz/capabilities', '/mod_quiz/attempt-states'],
  local_reports: ['/local_reports/', '/local_reports/reports'],
};
const ALL_ROUTES = Object.values(ROUTES).flat();
/** Release 3 applies a `site`-class change to these after releases 1 and 2 (examples/lms/README.md). */
const BROKEN_BY_RELEASE_3 = ['mod_quiz', 'local_reports'];

/** Load starts, the upgrade starts 1.5 s later, and load goes on for 1.5 s after it ends (6 s at least). */
const LOAD_MS = 6000;
const UPGRADE_AFTER_MS = 1500;
const LOAD_AFTER_UPGRADE_MS = 1500;

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

async function get(front: FrontProcess, path: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${front.url}${path}`, { headers: { accept: 'application/json' } });
  return { status: response.status, body: await response.json() };
}

/** Steady load on every user route of one front, until stopped (30 s at most). */
function hammer(front: FrontProcess): { result: Promise<autocannon.Result>; stop(): void } {
  let instance: autocannon.Instance | undefined;
  const result = new Promise<autocannon.Result>((resolveResult, reject) => {
    instance = autocannon(
      {
        url: front.url,
        connections: 8,
        duration: 30,
        timeout: 5,
        headers: { accept: 'application/json' },
        requests: ALL_ROUTES.map((path) => ({ method: 'GET' as const, path })),
      },
      (error, done) => (error ? reject(error) : resolveResult(done)),
    );
  });
  return { result, stop: () => instance?.stop() };
}

describe.skipIf(!postgresAvailable)('Rolling deploy: old and new fronts side by side on one PostgreSQL database', () => {
  let scratch: ScratchDatabase;
  let release1: SiteDir;
  let release2: SiteDir;
  let release3: SiteDir;
  let frontA: FrontProcess; // release 1 code
  let frontB: FrontProcess; // release 2 code

  const status = async (root: string) => {
    const result = await cli(['status', '--json', '--root', root, '--database', scratch.url]);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout);
  };

  beforeAll(async () => {
    [scratch, release1, release2, release3] = await Promise.all([
      createScratchDatabase('rollout'),
      createSiteDir(1),
      createSiteDir(2),
      createSiteDir(3),
    ]);
    const install = await cli(['upgrade', '--non-interactive', '--root', release1.root, '--database', scratch.url]);
    expect(install.code, install.stderr).toBe(0);
    [frontA, frontB] = await Promise.all([
      startFront({ root: release1.root, database: scratch.url, logLevel: 'warn' }),
      startFront({ root: release2.root, database: scratch.url, logLevel: 'warn' }),
    ]);
  });

  afterAll(async () => {
    try {
      const stopped = await Promise.all([frontA, frontB].filter(Boolean).map((front) => front.stop()));
      for (const exit of stopped) expect(exit).toEqual({ code: 0, signal: null });
      // Release 3 code: never behind the database, whichever test got how far.
      if (scratch) expect((await status(release3.root)).fronts).toEqual([]);
    } finally {
      await scratch?.drop();
      await Promise.all([release1, release2, release3].map((site) => site?.cleanup()));
    }
  });

  it('An old-release front and a new-release front run side by side against one PostgreSQL database through a no-maintenance upgrade: neither answers a single non-2xx to user routes', async () => {
    // Front B's code is ahead of the database, but every pending change is class none: it serves.
    expect(await get(frontA, '/theme_clean/')).toEqual({ status: 200, body: { component: 'theme_clean', release: '1.0' } });
    expect(await get(frontB, '/theme_clean/')).toEqual({ status: 200, body: { component: 'theme_clean', release: '1.1' } });

    const loadStart = performance.now();
    const [loadA, loadB] = [hammer(frontA), hammer(frontB)];
    await sleep(UPGRADE_AFTER_MS);
    const upgrade = await cli(['upgrade', '--no-maintenance', '--non-interactive', '--root', release2.root, '--database', scratch.url], { timeoutMs: 25_000 });
    const upgradeDoneAtMs = performance.now() - loadStart;
    await sleep(Math.max(LOAD_AFTER_UPGRADE_MS, LOAD_MS - upgradeDoneAtMs));
    loadA.stop();
    loadB.stop();
    const [a, b] = await Promise.all([loadA.result, loadB.result]);
    const loadMs = performance.now() - loadStart;

    expect(upgrade.code, `${upgrade.stdout}\n${upgrade.stderr}`).toBe(0);
    for (const [name, result] of [['A (release 1)', a], ['B (release 2)', b]] as const) {
      console.log(`front ${name}: ${result.requests.total} requests, 2xx ${result['2xx']}, non2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}, latency p50 ${result.latency.p50} ms p99 ${result.latency.p99} ms (upgrade ${UPGRADE_AFTER_MS}-${Math.round(upgradeDoneAtMs)} ms of ${Math.round(loadMs)} ms load)`);
      expect({ front: name, non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts }).toEqual({ front: name, non2xx: 0, errors: 0, timeouts: 0 });
      expect(result['2xx']).toBeGreaterThan(500);
    }

    // The database is at release 2 now; nothing is pending for release 2 code.
    const after = await status(release2.root);
    expect(after.pending).toBe(false);
    const installed = Object.fromEntries(after.components.map((c: any) => [c.component, c.installedVersion]));
    expect(installed).toMatchObject({ core: V2, theme_clean: V2, auth_manual: V2, format_topics: V2, block_news: V2, mod_assign: V2, mod_quiz: V1, local_reports: V1 });

    // Front A's code trails the database, after none-class steps only: it still serves and stays ready.
    for (const path of ALL_ROUTES) expect({ path, status: (await get(frontA, path)).status }).toEqual({ path, status: 200 });
    expect(await get(frontA, '/readyz')).toEqual({ status: 200, body: { status: 'ready' } });
    expect((await get(frontB, '/readyz')).status).toBe(200);

    const fronts = new Map(after.fronts.map((f: any) => [f.pid, f]));
    expect(fronts.get(frontA.pid)).toMatchObject({ url: frontA.url, relation: 'trails' });
    expect(fronts.get(frontB.pid)).toMatchObject({ url: frontB.url, relation: 'matches', differences: [] });
    expect(after.fronts).toHaveLength(2);

    // Neither front logged a warning or an error (a failed state refresh, say) through the upgrade.
    for (const front of [frontA, frontB]) expect(front.output().stdout).not.toMatch(/"level":(40|50|60)/);
  });

  it('Contrast: after a maintenance upgrade to release 3, the older fronts answer 503 OUTAGELESS_CODE_BEHIND on the components it broke, 200 elsewhere, and fail readiness', async () => {
    const upgrade = await cli(['upgrade', '--non-interactive', '--root', release3.root, '--database', scratch.url]);
    expect(upgrade.code, `${upgrade.stdout}\n${upgrade.stderr}`).toBe(0);

    const expected: Record<string, number | string> = { '/readyz': 503 };
    for (const [component, paths] of Object.entries(ROUTES)) {
      for (const path of paths) expected[path] = BROKEN_BY_RELEASE_3.includes(component) ? `503 OUTAGELESS_CODE_BEHIND ${component}` : 200;
    }
    const observe = async (front: FrontProcess) => {
      const seen: Record<string, number | string> = {};
      for (const path of Object.keys(expected)) {
        const { status: code, body } = await get(front, path);
        seen[path] = body?.error ? `${code} ${body.error.code} ${body.error.component}` : code;
      }
      return seen;
    };

    // The fronts learn of the new state by NOTIFY, or by polling within about a second.
    for (const front of [frontA, frontB]) {
      const deadline = Date.now() + 3000;
      let seen = await observe(front);
      while (JSON.stringify(seen) !== JSON.stringify(expected) && Date.now() < deadline) {
        await sleep(100);
        seen = await observe(front);
      }
      expect(seen).toEqual(expected);
      const ready = await get(front, '/readyz');
      expect([...ready.body.components].sort()).toEqual([...BROKEN_BY_RELEASE_3].sort());
      // A short Retry-After: the client is meant to land on an up-to-date front instead.
      const quiz = await fetch(`${front.url}/mod_quiz/`);
      expect({ retryAfter: quiz.headers.get('retry-after'), type: quiz.headers.get('content-type') }).toEqual({ retryAfter: '5', type: 'text/html; charset=utf-8' });
      await quiz.arrayBuffer();
    }

    const fronts = (await status(release3.root)).fronts;
    expect(fronts.map((f: any) => f.relation)).toEqual(['trails', 'trails']);
  });
});
