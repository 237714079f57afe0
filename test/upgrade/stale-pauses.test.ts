/**
 * Issue 11, item 1: pauses taken by a staged run are the run's. A run that died (SIGKILL)
 * cannot return its component, so the next run, or `status`, reclaims every pause whose run
 * no longer holds the upgrade lock; a pause an operator set is never touched. Ends with the
 * acceptance kill test: a staged upgrade killed at random points, 10 times, never leaves a
 * component paused, and every rerun ends with every route serving. PostgreSQL, real binary.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { startFront } from '../support/fronts.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

if (!postgresAvailable) console.warn('[stale-pauses] PostgreSQL unavailable: these tests are SKIPPED.');

const V1 = 2026010100;

/**
 * `local_stage`, paused on its own by `component`-class steps. Release `n` (version
 * `V1 + n * perRelease`) has `n * perRelease` steps, one version each; each records its run in `local_stage_run` inside its transaction (so a step applied
 * twice shows as two rows), then sleeps `stepMs`. With `blockFile`, the last step blocks
 * until that file exists, after writing `markerFile`.
 */
async function writeStage(site: SiteDir, n: number, options: { perRelease?: number; stepMs?: number; blockFile?: string; markerFile?: string } = {}): Promise<void> {
  const dir = 'plugins/local/stage';
  const perRelease = options.perRelease ?? 1;
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_stage', version: ${V1 + n * perRelease}, requires: ${V1}, maturity: 'stable', maintenance: { disableable: true } });
`);
  await site.write(`${dir}/index.ts`, `export default async function routes(app) {
  app.get('/', async () => ({ component: 'local_stage', version: ${V1 + n * perRelease} }));
}
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: { local_stage_run: { columns: { id: { type: 'bigint', autoIncrement: true }, step: { type: 'varchar(50)' } }, primaryKey: ['id'] } },
});
`);
  const steps: string[] = [];
  for (let release = 1; release <= n; release++) {
    for (let index = 0; index < perRelease; index++) {
      const id = `stage_${release}_${index}`;
      const last = release === n && index === perRelease - 1;
      steps.push(`{
    version: ${V1 + (release - 1) * perRelease + index + 1},
    id: '${id}',
    outage: 'component',
    async run({ db }) {
      await db.insertInto('local_stage_run').values({ step: '${id}' }).execute();
      await db.selectNoFrom((eb) => eb.fn('pg_sleep', [eb.val(${(options.stepMs ?? 0) / 1000})]).as('slept')).execute();
      ${last && options.blockFile ? `writeFileSync(${JSON.stringify(options.markerFile)}, String(process.pid));
      while (!existsSync(${JSON.stringify(options.blockFile)})) await sleep(20);` : ''}
    },
  }`);
    }
  }
  await site.write(`${dir}/db/upgrade.ts`, `import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${steps.join(', ')}] });
`);
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!postgresAvailable)('Pauses of a dead run are reclaimed (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let files: string;

  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url]);
  const query = async <T = any>(text: string, values: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as T[];
    } finally {
      await client.end();
    }
  };
  const pausesNow = () => query<{ component: string; state: string; paused_by_run: string | null }>(
    'select component, state, paused_by_run from outageless_component_state order by component');
  const installedStage = async () => (await query<{ version: number }>(`select version::int from outageless_component where component = 'local_stage'`))[0]?.version;

  beforeAll(async () => {
    scratch = await createScratchDatabase('stale_pauses');
  });
  afterAll(async () => {
    await scratch?.drop();
  });
  beforeEach(async () => {
    await query('drop schema public cascade; create schema public');
    site = await createSiteDir(1);
    files = await mkdtemp(join(tmpdir(), 'outageless-stale-'));
  });
  afterEach(async () => {
    await writeFile(join(files, 'release'), '').catch(() => {});
    await site?.cleanup();
    await rm(files, { recursive: true, force: true });
  });

  it('a staged upgrade killed in a component-class step: a plain rerun returns the component to normal', async () => {
    await writeStage(site, 0);
    expect((await run(['upgrade', '--non-interactive'])).code).toBe(0);
    const marker = join(files, 'marker');
    await writeStage(site, 1, { blockFile: join(files, 'release'), markerFile: marker });

    const staged = run(['upgrade', '--no-maintenance', '--non-interactive']);
    await waitFor('the step to block', () => existsSync(marker) && readFileSync(marker, 'utf8').length > 0);
    const [pause] = await pausesNow();
    expect(pause).toMatchObject({ component: 'local_stage', state: 'maintenance' });
    expect(pause!.paused_by_run).toMatch(/^[0-9a-f-]{36}$/);

    // While the run lives, status leaves its pause alone.
    const live = await run(['status', '--json']);
    expect(live.code, live.stderr).toBe(0);
    expect(await pausesNow()).toEqual([pause]);

    staged.child.kill('SIGKILL');
    await staged;
    await writeFile(join(files, 'release'), '');

    const rerun = await run(['upgrade', '--non-interactive']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await installedStage()).toBe(V1 + 1);
    expect(await pausesNow()).toEqual([]);
    expect((await query('select step from local_stage_run')).map((row) => row.step)).toEqual(['stage_1_0']);
  });

  it('with nothing pending (the kill landed in the last commit), a --no-maintenance rerun and status both reclaim; an operator pause stays', async () => {
    await writeStage(site, 0);
    expect((await run(['upgrade', '--non-interactive'])).code).toBe(0);
    // What a kill between the last step's commit and the resume leaves: the run is gone, its pause is not.
    const deadRun = randomUUID();
    await query(`insert into outageless_component_state (component, state, reason, paused_by_run, since) values ('local_stage', 'maintenance', 'staged upgrade', $1, now())`, [deadRun]);
    await query(`insert into outageless_component_state (component, state, reason, paused_by_run, since) values ('mod_assign', 'maintenance', 'operator', null, now())`);

    const rerun = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/nothing to do/i);
    expect(await pausesNow()).toEqual([{ component: 'mod_assign', state: 'maintenance', paused_by_run: null }]);

    // status reclaims too, and says so.
    await query(`insert into outageless_component_state (component, state, reason, paused_by_run, since) values ('local_stage', 'post-install', 'staged upgrade', $1, now())`, [deadRun]);
    const status = await run(['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`returned local_stage to normal: it was paused by upgrade run ${deadRun}, which is no longer running`);
    expect(await pausesNow()).toEqual([{ component: 'mod_assign', state: 'maintenance', paused_by_run: null }]);
  });

  it('a staged upgrade killed at random points, 10 times: nothing left paused, nothing applied twice, every route serving after each rerun', async () => {
    await writeStage(site, 0);
    expect((await run(['upgrade', '--non-interactive'])).code).toBe(0);
    const perRelease = 3;
    const stepMs = 150;
    const routes = ['/', '/local_stage/', '/local_reports/', '/mod_assign/'];
    for (let n = 1; n <= 10; n++) {
      await writeStage(site, n, { perRelease, stepMs });
      const staged = run(['upgrade', '--no-maintenance', '--non-interactive']);
      // Start-up takes a few hundred ms; the steps take ~450 ms: land anywhere from before the
      // first step to after the last.
      const delay = 200 + Math.floor(Math.random() * 1200);
      await new Promise((resolve) => setTimeout(resolve, delay));
      staged.child.kill('SIGKILL');
      await staged;

      // Staged and plain reruns in turn: a plain one never pauses, so it must reclaim.
      const rerun = await run(n % 2 === 0 ? ['upgrade', '--no-maintenance', '--non-interactive'] : ['upgrade', '--non-interactive']);
      expect(rerun.code, `kill ${n} after ${delay} ms: ${rerun.stdout}\n${rerun.stderr}`).toBe(0);
      expect(await pausesNow(), `kill ${n} after ${delay} ms`).toEqual([]);
      expect(await installedStage()).toBe(V1 + n * perRelease);
      const applied = await query<{ step: string; runs: number }>('select step, count(*)::int as runs from local_stage_run group by step');
      expect(applied).toHaveLength(n * perRelease);
      expect(applied.filter((row) => row.runs !== 1), `kill ${n} after ${delay} ms`).toEqual([]);

      const front = await startFront({ root: site.root, database: scratch.url });
      try {
        for (const route of routes) {
          const response = await fetch(`${front.url}${route}`);
          expect(response.status, `kill ${n} after ${delay} ms: GET ${route} ${await response.text()}`).toBe(200);
        }
      } finally {
        await front.stop();
      }
    }
  }, 120_000);
});
