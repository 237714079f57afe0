/**
 * Phases (issue 8) on PostgreSQL with real fronts (`outageless serve`) and the real CLI:
 * - expand → backfill → contract with two fronts: `upgrade --phase pre` while the old front
 *   serves (no non-2xx), a new-code front not ready until then, `upgrade --no-maintenance`, a
 *   background migration finishing under traffic, and the contract (post) step held back while
 *   the old front lives and applied by `upgrade --phase post` once it stopped;
 * - a release gated on that migration: refused with the coded error, database unchanged, and
 *   accepted after `background finish`;
 * - a maintenance-mode upgrade with a pre step: fronts answer 503 only during the main step;
 * - bad input (background step without key or table, unknown `after:`, a `pre` step declaring
 *   `site`): a coded error, exit 1, and the database unchanged.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFront, type FrontProcess } from '../support/fronts.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, writeBareCore, type CliResult, type SiteDir } from '../support/sites.ts';

if (!postgresAvailable) console.warn('phases.test.ts skipped: no PostgreSQL at TEST_DATABASE_URL');

const CORE = 2026010100;
const V1 = 2026010100;
/** Release 2: pre (add score), background (fill score), post (drop points). */
const V2 = 2026020103;
/** Release 2 without its post step (for the gate), and release 3 whose post step is gated. */
const V2_NO_POST = 2026020102;
const V3 = 2026030100;
const ROWS = 100_000;

const PRE_ADD_SCORE = `{ phase: 'pre', version: 2026020101, id: 'ph_add_score', description: 'Add the new column', outage: 'none',
    async run({ schema }) { await schema.addColumn('local_ph_item', 'score', { type: 'integer', nullable: true }); } }`;
const BG_FILL_SCORE = `{ phase: 'background', version: 2026020102, id: 'ph_fill_score', description: 'score = points * 10',
    table: 'local_ph_item', key: 'id',
    async batch({ db, from, to }) {
      const result = await db.updateTable('local_ph_item').set((eb) => ({ score: eb('points', '*', 10) }))
        .where('id', '>=', from).where('id', '<=', to).where('score', 'is', null).executeTakeFirst();
      return Number(result.numUpdatedRows);
    } }`;
const postDropPoints = (version: number, after = '') => `{ phase: 'post', version: ${version}, id: 'ph_drop_points', description: 'Drop the old column', outage: 'none'${after},
    async run({ schema }) { await schema.dropColumn('local_ph_item', 'points'); } }`;

interface Release {
  readonly version: number;
  /** Step literals of local_ph's db/upgrade.ts. */
  readonly steps: readonly string[];
  /** Which column the routes read: the old code reads points, the new code score. */
  readonly reads: 'points' | 'score';
  /** Columns of local_ph_item beyond id and name, as db/schema.ts declares them. */
  readonly columns: readonly ('points' | 'score')[];
}

const RELEASE_1: Release = { version: V1, steps: [], reads: 'points', columns: ['points'] };
const RELEASE_2: Release = { version: V2, steps: [PRE_ADD_SCORE, BG_FILL_SCORE, postDropPoints(V2)], reads: 'score', columns: ['score'] };

/**
 * A site of a bare core, local_ph (the plugin that changes) and local_other (never changes:
 * its routes tell site-wide maintenance from local_ph's own readiness).
 */
async function writeSite(site: SiteDir, release: Release): Promise<void> {
  await writeBareCore(site, CORE);
  await site.write('plugins/local/ph/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_ph', version: ${release.version}, requires: ${CORE}, maturity: 'stable' });
`);
  const columns = release.columns.map((column) => `, ${column}: { type: 'integer', nullable: true }`).join('');
  await site.write('plugins/local/ph/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({ tables: {
  local_ph_item: { columns: { id: { type: 'bigint', autoIncrement: true }, name: { type: 'varchar(50)', default: '' }${columns} }, primaryKey: ['id'] },
} });
`);
  await site.write('plugins/local/ph/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${release.steps.join(',\n  ')}] });
`);
  await site.write('plugins/local/ph/index.ts', `export default async function routes(app: any): Promise<void> {
  const db = () => app.outageless.database.db;
  app.get('/item/:id', async (request: any) => (await db().selectFrom('local_ph_item').select(['id', 'name', '${release.reads}']).where('id', '=', Number(request.params.id)).executeTakeFirst()) ?? null);
  app.put('/item/:id', async (request: any) => { await db().updateTable('local_ph_item').set({ name: 'edited' }).where('id', '=', Number(request.params.id)).execute(); return { ok: true }; });
}
`);
  await site.write('plugins/local/other/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_other', version: ${V1}, requires: ${CORE}, maturity: 'stable' });
`);
  await site.write('plugins/local/other/db/schema.ts', `import { defineSchema } from 'outageless';\nexport default defineSchema({ tables: {} });\n`);
  await site.write('plugins/local/other/db/upgrade.ts', `import { defineUpgrade } from 'outageless';\nexport default defineUpgrade({ steps: [] });\n`);
  await site.write('plugins/local/other/index.ts', `export default async function routes(app: any): Promise<void> {
  app.get('/ping', async () => ({ ok: true }));
}
`);
}

interface Traffic {
  stop(): Promise<{ requests: number; failures: string[] }>;
}

/** Two HTTP clients reading and updating local_ph items on one front in a loop; bounded in time. */
function startTraffic(base: string, maxSeconds: number): Traffic {
  let running = true;
  let requests = 0;
  const failures: string[] = [];
  const deadline = Date.now() + maxSeconds * 1000;
  const client = async (n: number) => {
    for (let i = 0; running && Date.now() < deadline; i++) {
      const id = 1 + ((i * 7919 + n * 104_729) % ROWS);
      const method = i % 3 === 2 ? 'PUT' : 'GET';
      try {
        const response = await fetch(`${base}/local_ph/item/${id}`, { method, signal: AbortSignal.timeout(10_000) });
        const body = await response.text();
        if (response.status < 200 || response.status > 299) failures.push(`${method} ${id}: ${response.status} ${body.slice(0, 200)}`);
      } catch (error) {
        failures.push(`${method} ${id}: ${String(error)}`);
      }
      requests++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const clients = [0, 1].map(client);
  return {
    async stop() {
      running = false;
      await Promise.all(clients);
      return { requests, failures };
    },
  };
}

async function status(url: string): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  await response.arrayBuffer();
  return response.status;
}

/** Polls `url` until it answers `expected` (the front's state cache follows NOTIFY and its poll). */
async function waitForStatus(url: string, expected: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    last = await status(url).catch(() => -1);
    if (last === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} answered ${last}, not ${expected}, for ${timeoutMs} ms`);
}

describe.skipIf(!postgresAvailable)('phases: pre, main, background, post (PostgreSQL, real fronts)', () => {
  let scratch: ScratchDatabase;
  let admin: pg.Pool;
  const sites: SiteDir[] = [];
  const fronts: FrontProcess[] = [];
  const query = async <T = Record<string, unknown>>(text: string) => (await admin.query(text)).rows as T[];
  const run = (site: SiteDir, args: readonly string[], timeoutMs = 60_000): Promise<CliResult> & { child: import('node:child_process').ChildProcess } =>
    cli([...args, '--root', site.root, '--database', scratch.url], { timeoutMs });
  const serve = async (site: SiteDir) => {
    const front = await startFront({ root: site.root, database: scratch.url });
    fronts.push(front);
    return front;
  };
  const siteWith = async (release: Release) => {
    const site = await createSiteDir();
    sites.push(site);
    await writeSite(site, release);
    return site;
  };
  /** What a refused run must leave alone. */
  const snapshot = async () => ({
    components: await query(`select component, version::text, definitions_hash from outageless_component order by component`),
    tables: await query(`select table_name from information_schema.tables where table_schema = 'public' order by table_name`),
    columns: await query(`select column_name from information_schema.columns where table_name = 'local_ph_item' order by column_name`),
    owed: await query(`select component, step_id from outageless_owed_step order by step_id`).catch(() => []),
    log: await query(`select component, step_id, status from outageless_upgrade_log order by id`),
    maintenance: await query(`select component, state from outageless_component_state order by component`).catch(() => []),
    background: await query(`select component, id, state, cursor::text from outageless_background_migration order by id`).catch(() => []),
  });
  /** A fresh site database with release 1 installed and `rows` items. */
  const installRelease1 = async (rows: number) => {
    await query('drop schema public cascade; create schema public');
    const old = await siteWith(RELEASE_1);
    const install = await run(old, ['upgrade', '--non-interactive']);
    expect(install.code, install.stdout + install.stderr).toBe(0);
    await query(`insert into local_ph_item (name, points) select 'item ' || i, i from generate_series(1, ${rows}) i`);
    return old;
  };

  beforeAll(async () => {
    scratch = await createScratchDatabase('phases');
    admin = new pg.Pool({ connectionString: scratch.url, max: 2 });
  });
  afterEach(async () => {
    await Promise.all(fronts.splice(0).map((front) => front.stop()));
  });
  afterAll(async () => {
    await admin?.end();
    await Promise.all(sites.map((site) => site.cleanup()));
    await scratch?.drop();
  });

  it('expand with the old front serving, a new front ready only after it, backfill under traffic, contract once the old front is gone', async () => {
    const oldCode = await installRelease1(ROWS);
    const newCode = await siteWith(RELEASE_2);
    const oldFront = await serve(oldCode);
    const traffic = startTraffic(oldFront.url, 90);

    // 2. The new code on a front before its expand step: not ready, its routes 503, others serve.
    const newFront = await serve(newCode);
    expect(await status(`${newFront.url}/readyz`)).toBe(503);
    const early = await fetch(`${newFront.url}/local_ph/item/1`, { headers: { accept: 'application/json' } });
    expect(early.status).toBe(503);
    const earlyError = ((await early.json()) as { error: { code: string; message: string } }).error;
    expect(earlyError.code).toBe('OUTAGELESS_UPGRADE_PENDING');
    expect(earlyError.message).toContain('outageless upgrade --phase pre');
    expect(await status(`${newFront.url}/local_other/ping`)).toBe(200);

    // 1. The expand step while the old front serves.
    const pre = await run(newCode, ['upgrade', '--phase', 'pre', '--non-interactive']);
    expect(pre.code, pre.stdout + pre.stderr).toBe(0);
    expect(pre.stdout).toMatch(/Pre steps done in \d+\.\d\d s, with every front serving/);
    expect(await query(`select column_name from information_schema.columns where table_name = 'local_ph_item' and column_name = 'score'`)).toHaveLength(1);
    // Only the pre step ran: the version has not moved, nothing is queued, nothing is owed.
    expect(await query(`select version::int from outageless_component where component = 'local_ph'`)).toEqual([{ version: V1 }]);
    expect(await query(`select step_id, status from outageless_upgrade_log where component = 'local_ph' and step_id is not null`)).toEqual([{ step_id: 'ph_add_score', status: 'applied' }]);

    // The new front is ready once the database has its pre step.
    await waitForStatus(`${newFront.url}/readyz`, 200);
    expect(await status(`${newFront.url}/local_ph/item/1`)).toBe(200);

    // 3. The main part online: the migration is queued, the post step owed and held back by the old front.
    const main = await run(newCode, ['upgrade', '--no-maintenance', '--non-interactive']);
    expect(main.code, main.stdout + main.stderr).toBe(0);
    expect(main.stdout).toContain('background migration ph_fill_score queued');
    expect(main.stdout).toContain('Post steps still owed; run `outageless upgrade --phase post`');
    expect(main.stdout).toMatch(new RegExp(`local_ph/ph_drop_points \\(${V2}\\): 1 live front\\(s\\) still run local_ph below ${V2}`));
    expect(main.stdout).toContain(`front `);
    expect(main.stdout).toContain(`pid ${oldFront.pid} ${oldFront.url} runs local_ph ${V1}`);
    expect(main.stdout).not.toContain(`pid ${newFront.pid}`);
    expect(await query(`select version::int from outageless_component where component = 'local_ph'`)).toEqual([{ version: V2 }]);
    expect(await query(`select component, step_id from outageless_owed_step`)).toEqual([{ component: 'local_ph', step_id: 'ph_drop_points' }]);
    const listed = await run(newCode, ['status']);
    expect(listed.stdout, listed.stderr).toContain('Owed post steps (they run once no live front runs the old code):');
    expect(listed.stdout).toMatch(new RegExp(`local_ph/ph_drop_points \\(${V2}\\), owed since .*: outageless upgrade --phase post`));

    // 4. The backfill finishes while traffic runs (the fronts work it too; finish runs the rest).
    const backfillStarted = performance.now();
    const finish = await run(newCode, ['background', 'finish', 'local_ph/ph_fill_score'], 120_000);
    const backfillMs = performance.now() - backfillStarted;
    expect(finish.code, finish.stdout + finish.stderr).toBe(0);
    expect(finish.stdout).toMatch(/local_ph\/ph_fill_score (finished|is already finished)/);
    console.log(`phases: backfill of ${ROWS} rows done ${(backfillMs / 1000).toFixed(2)} s after the upgrade, under traffic: ${finish.stdout.trim().split('\n').at(-1)}`);
    expect(await query(`select state from outageless_background_migration where component = 'local_ph' and id = 'ph_fill_score'`)).toEqual([{ state: 'finished' }]);
    expect(await query(`select count(*)::int as n from local_ph_item where score is distinct from points * 10`)).toEqual([{ n: 0 }]);

    // 5. The contract step is refused while the old front lives …
    const held = await run(newCode, ['upgrade', '--phase', 'post', '--non-interactive']);
    expect(held.code, held.stdout + held.stderr).toBe(0);
    expect(held.stdout).toContain('Post steps still owed; run `outageless upgrade --phase post`');
    expect(held.stdout).toContain(`pid ${oldFront.pid}`);
    expect(await query(`select column_name from information_schema.columns where table_name = 'local_ph_item' and column_name = 'points'`)).toHaveLength(1);

    // … which served every request of the whole flow.
    const seen = await traffic.stop();
    expect(seen.requests).toBeGreaterThan(50);
    expect(seen.failures).toEqual([]);

    // … and runs once it stopped (a graceful stop removes its registry row).
    expect((await oldFront.stop()).code).toBe(0);
    expect(await query(`select pid from outageless_front order by pid`)).toEqual([{ pid: newFront.pid }]);
    const post = await run(newCode, ['upgrade', '--phase', 'post', '--non-interactive']);
    expect(post.code, post.stdout + post.stderr).toBe(0);
    expect(post.stdout).toContain('Post step local_ph/ph_drop_points applied.');
    expect(await query(`select column_name from information_schema.columns where table_name = 'local_ph_item' order by column_name`)).toEqual([
      { column_name: 'id' }, { column_name: 'name' }, { column_name: 'score' },
    ]);
    expect(await query(`select count(*)::int as n from outageless_owed_step`)).toEqual([{ n: 0 }]);
    expect(await status(`${newFront.url}/local_ph/item/1`)).toBe(200);
    const again = await run(newCode, ['upgrade', '--phase', 'post', '--non-interactive']);
    expect(again.stdout).toContain('No post step is owed: nothing to do.');
  }, 180_000);

  it('refuses a release gated on an unfinished background migration, changing nothing, and accepts it after background finish', async () => {
    await installRelease1(5000);
    const release2 = await siteWith({ version: V2_NO_POST, steps: [PRE_ADD_SCORE, BG_FILL_SCORE], reads: 'score', columns: ['points', 'score'] });
    const upgrade2 = await run(release2, ['upgrade', '--no-maintenance', '--non-interactive']);
    expect(upgrade2.code, upgrade2.stdout + upgrade2.stderr).toBe(0);
    // Nothing works it (no front, no worker): it stays queued.
    expect(await query(`select state from outageless_background_migration where id = 'ph_fill_score'`)).toEqual([{ state: 'queued' }]);

    const release3 = await siteWith({ version: V3, steps: [PRE_ADD_SCORE, BG_FILL_SCORE, postDropPoints(V3, `, after: ['local_ph/ph_fill_score']`)], reads: 'score', columns: ['score'] });
    const before = await snapshot();
    const refused = await run(release3, ['upgrade', '--no-maintenance', '--non-interactive']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_UNFINISHED_PREREQUISITE');
    expect(refused.stderr).toContain('local_ph/ph_drop_points needs local_ph/ph_fill_score: background migration queued');
    expect(refused.stderr).toMatch(/0(\.0)?%/);
    expect(refused.stderr).toContain('outageless background finish local_ph/ph_fill_score');
    expect(await snapshot()).toEqual(before);
    // --is-maintenance-required reports the plan, gate included, and changes nothing.
    const report = await run(release3, ['upgrade', '--is-maintenance-required']);
    expect(report.stdout, report.stderr).toContain('Refused until finished (finalization gates):');
    expect(report.stdout).toContain('local_ph/ph_drop_points is gated on local_ph/ph_fill_score: background migration queued');
    expect(report.stdout).toContain('finish it with: outageless background finish local_ph/ph_fill_score');
    expect(await snapshot()).toEqual(before);

    const finish = await run(release2, ['background', 'finish', 'local_ph/ph_fill_score']);
    expect(finish.code, finish.stdout + finish.stderr).toBe(0);
    const accepted = await run(release3, ['upgrade', '--no-maintenance', '--non-interactive']);
    expect(accepted.code, accepted.stdout + accepted.stderr).toBe(0);
    // No front holds it back: the post step runs at the end of the same upgrade.
    expect(accepted.stdout).toContain('Post step local_ph/ph_drop_points applied.');
    expect(await query(`select version::int from outageless_component where component = 'local_ph'`)).toEqual([{ version: V3 }]);
    expect(await query(`select column_name from information_schema.columns where table_name = 'local_ph_item' order by column_name`)).toEqual([
      { column_name: 'id' }, { column_name: 'name' }, { column_name: 'score' },
    ]);
    expect(await query(`select count(*)::int as n from local_ph_item where score is null`)).toEqual([{ n: 0 }]);
  }, 120_000);

  it('a maintenance-mode upgrade runs its pre step with fronts serving and answers 503 only during the main step', async () => {
    const oldCode = await installRelease1(100);
    const slowPre = `{ phase: 'pre', version: 2026020101, id: 'ph_slow_pre', description: 'Add score, slowly', outage: 'none',
    async run({ schema }) { await new Promise((resolve) => setTimeout(resolve, 1500)); await schema.addColumn('local_ph_item', 'score', { type: 'integer', nullable: true }); } }`;
    const slowMain = `{ version: 2026020102, id: 'ph_slow_main', description: 'Fill score, slowly, in maintenance', outage: 'site',
    async run({ db }) { await new Promise((resolve) => setTimeout(resolve, 1500)); await db.updateTable('local_ph_item').set((eb) => ({ score: eb('points', '*', 10) })).execute(); } }`;
    const newCode = await siteWith({ version: V2_NO_POST, steps: [slowPre, slowMain], reads: 'score', columns: ['points', 'score'] });
    const front = await serve(oldCode);

    // local_other never changes: only site-wide maintenance can turn it away.
    const polls: { at: number; status: number }[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        polls.push({ at: performance.now(), status: await status(`${front.url}/local_other/ping`).catch(() => -1) });
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    const marks: { line: string; at: number }[] = [];
    const upgrade = run(newCode, ['upgrade', '--non-interactive']);
    const started = performance.now();
    upgrade.child.stdout!.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) marks.push({ line, at: performance.now() });
    });
    const result = await upgrade;
    polling = false;
    await poller;
    expect(result.code, result.stdout + result.stderr).toBe(0);

    const durations = /Pre steps: (\d+\.\d\d) s with fronts serving; main steps: (\d+\.\d\d) s in maintenance \(the window\)\./.exec(result.stdout);
    expect(durations, result.stdout).not.toBeNull();
    expect(Number(durations![1])).toBeGreaterThanOrEqual(1.4);
    expect(Number(durations![2])).toBeGreaterThanOrEqual(1.4);

    const preDone = marks.find((mark) => mark.line.includes('step ph_slow_pre (2026020101) applied'))?.at;
    const mainDone = marks.find((mark) => mark.line.includes('step ph_slow_main (2026020102) applied'))?.at;
    expect(preDone, result.stdout).toBeDefined();
    expect(mainDone, result.stdout).toBeDefined();
    const during = (from: number, to: number) => polls.filter((poll) => poll.at >= from && poll.at + 0 <= to).map((poll) => poll.status);
    // During the pre step (after the process started, the last 100 ms left out for output lag): served.
    const whilePre = during(started + 300, preDone! - 100);
    expect(whilePre.length).toBeGreaterThan(10);
    expect(new Set(whilePre)).toEqual(new Set([200]));
    // During the main step (the front's state cache may take a moment to follow): 503.
    const whileMain = during(preDone! + 400, mainDone! - 50);
    expect(whileMain.length).toBeGreaterThan(10);
    expect(new Set(whileMain)).toEqual(new Set([503]));
    console.log(`phases: maintenance run: ${durations![0]} polls while pre: ${whilePre.length} (all 200), while main: ${whileMain.length} (all 503)`);
    // And served again once the run is over.
    await waitForStatus(`${front.url}/local_other/ping`, 200);
    expect(await query(`select count(*)::int as n from local_ph_item where score = points * 10`)).toEqual([{ n: 100 }]);
  }, 60_000);

  describe('bad input: a coded error, exit 1, the database unchanged', () => {
    const cases: readonly { name: string; steps: string[]; code: string; says: RegExp }[] = [
      {
        name: 'a background step without key',
        steps: [`{ phase: 'background', version: 2026020101, id: 'ph_fill', table: 'local_ph_item', async batch() { return 0; } }`],
        code: 'OUTAGELESS_ERR_MANIFEST_INVALID',
        says: /^steps\[0\]\.key: /,
      },
      {
        name: 'a background step without table',
        steps: [`{ phase: 'background', version: 2026020101, id: 'ph_fill', key: 'id', async batch() { return 0; } }`],
        code: 'OUTAGELESS_ERR_MANIFEST_INVALID',
        says: /^steps\[0\]\.table: /,
      },
      {
        name: "an after: naming an unknown id of the component",
        steps: [`{ version: 2026020101, id: 'ph_gated', outage: 'none', after: ['local_ph/nope'], async run() {} }`],
        code: 'OUTAGELESS_ERR_UNKNOWN_PREREQUISITE',
        says: /local_ph\/nope/,
      },
      {
        name: "an after: naming an unknown id of another component",
        steps: [`{ version: 2026020101, id: 'ph_gated', outage: 'none', after: ['local_other/nope'], async run() {} }`],
        code: 'OUTAGELESS_ERR_UNKNOWN_PREREQUISITE',
        says: /local_other\/nope.*has no step with id "nope"/,
      },
      {
        name: "a pre step declaring 'site'",
        steps: [`{ phase: 'pre', version: 2026020101, id: 'ph_pre_site', outage: 'site', async run({ schema }) { await schema.addColumn('local_ph_item', 'score', { type: 'integer', nullable: true }); } }`],
        code: 'OUTAGELESS_ERR_PRE_STEP_NOT_NONE',
        says: /pre step "ph_pre_site" declares outage 'site'/,
      },
    ];
    for (const testCase of cases) {
      it(testCase.name, async () => {
        await installRelease1(10);
        const bad = await siteWith({ version: 2026020101, steps: testCase.steps, reads: 'points', columns: ['points', 'score'] });
        const before = await snapshot();
        for (const args of [['upgrade', '--non-interactive'], ['upgrade', '--phase', 'pre', '--non-interactive']]) {
          const result = await run(bad, [...args, '--json']);
          expect(result.code, result.stdout + result.stderr).toBe(1);
          const error = (JSON.parse(result.stdout) as { error: { code: string; message: string } }).error;
          expect(error.code, JSON.stringify(error)).toBe(testCase.code);
          expect(error.message, JSON.stringify(error)).toMatch(testCase.says);
          expect(result.stderr).toContain(testCase.code);
          expect(await snapshot()).toEqual(before);
        }
      }, 30_000);
    }
  });
});
