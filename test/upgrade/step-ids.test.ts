/**
 * Stable step ids (README "The run": a step id applied under another version is skipped and
 * logged). A fix backported onto two branches carries one id under two versions: a site that
 * ran it on the old branch must not run it again when it moves to the new one.
 * Runs on PostgreSQL and on the embedded database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/database/open.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const V0 = 2026010100; // first install: no steps
const V1 = 2026010101; // branch A (the stable branch) ships fix_x
const V2 = 2026020100; // branch B carries the same fix_x under its own, later version

/**
 * Writes `plugins/local/fix` at `version`, with `fix_x` at `fixVersion` (or no steps). The
 * step's run() records each execution in local_fix_counter, so executions can be counted.
 */
async function writeFixPlugin(site: SiteDir, version: number, fixVersion?: number): Promise<void> {
  const dir = 'plugins/local/fix';
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_fix', version: ${version}, requires: ${V0}, maturity: 'stable' });
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    local_fix_counter: {
      columns: { id: { type: 'bigint', autoIncrement: true }, step: { type: 'varchar(50)' }, version: { type: 'bigint' } },
      primaryKey: ['id'],
    },
  },
});
`);
  const steps = fixVersion === undefined ? '' : `{
      version: ${fixVersion},
      id: 'fix_x',
      description: 'Fix x (backported)',
      outage: 'none',
      async run({ db }) {
        await db.insertInto('local_fix_counter').values({ step: 'fix_x', version: ${fixVersion} }).execute();
      },
    }`;
  await site.write(`${dir}/db/upgrade.ts`, `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${steps}] });
`);
}

function stepIds(kind: 'postgres' | 'pglite') {
  let site: SiteDir;
  let database: string;
  let scratch: ScratchDatabase | undefined;
  let embeddedDir: string | undefined;
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', database]);

  /** Reads the site database in this process; closed before the next CLI run (PGlite is single-process). */
  async function read<T>(fn: (db: Awaited<ReturnType<typeof openDatabase>>['db']) => Promise<T>): Promise<T> {
    const opened = await openDatabase(database);
    try {
      return await fn(opened.db);
    } finally {
      await opened.close();
    }
  }

  beforeAll(async () => {
    site = await createSiteDir(1);
    if (kind === 'postgres') {
      scratch = await createScratchDatabase('step_ids');
      database = scratch.url;
    } else {
      embeddedDir = await mkdtemp(join(tmpdir(), 'outageless-step-ids-'));
      database = await embeddedDatabaseUrl(join(embeddedDir, 'db'));
    }
  });
  afterAll(async () => {
    await site?.cleanup();
    await scratch?.drop();
    if (embeddedDir) await rm(embeddedDir, { recursive: true, force: true });
  });

  it('the same step carried under two versions runs once', async () => {
    await writeFixPlugin(site, V0);
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);

    // Branch A: fix_x at V1.
    await writeFixPlugin(site, V1, V1);
    const onA = await run(['upgrade', '--non-interactive']);
    expect(onA.code, onA.stderr).toBe(0);
    expect(onA.stdout).toMatch(/local_fix:\s+step fix_x \(2026010101\) applied/);

    // Branch B: fix_x at V2 only (V1 is gone), the component's version bumped.
    await writeFixPlugin(site, V2, V2);
    const plan = await run(['upgrade', '--is-maintenance-required']);
    expect([2, 3], plan.stderr).toContain(plan.code); // pending either way
    expect(plan.stdout).toMatch(/local_fix\s+2026010101 -> 2026020100/);
    expect(plan.stdout).toContain('step fix_x (2026020100) was already applied under another version: skipped');

    const onB = await run(['upgrade', '--non-interactive']);
    expect(onB.code, onB.stderr).toBe(0);
    expect(onB.stdout).toContain('step fix_x (2026020100) skipped: already applied under another version');
    expect(onB.stdout).not.toMatch(/step fix_x \(2026020100\) applied/);
    expect(onB.stdout).toMatch(/local_fix: now at 2026020100/);

    const { counter, log, version } = await read(async (db) => ({
      counter: await db.selectFrom('local_fix_counter').select(['step', 'version']).execute(),
      log: await db
        .selectFrom('outageless_upgrade_log')
        .select(['step_id', 'version', 'status'])
        .where('component', '=', 'local_fix')
        .where('step_id', 'is not', null)
        .orderBy('id')
        .execute(),
      version: (await db.selectFrom('outageless_component').select('version').where('component', '=', 'local_fix').executeTakeFirst())?.version,
    }));
    // run() executed once, under branch A's version.
    expect(counter.map((row) => ({ step: row.step, version: Number(row.version) }))).toEqual([{ step: 'fix_x', version: V1 }]);
    expect(log.map((row) => ({ ...row, version: Number(row.version) }))).toEqual([
      { step_id: 'fix_x', version: V1, status: 'applied' },
      { step_id: 'fix_x', version: V2, status: 'skipped' },
    ]);
    expect(Number(version)).toBe(V2);

    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
    const checked = await run(['check-schema']);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
  }, 120_000); // seven embedded-database process starts: slow on a loaded machine
}

describe.skipIf(!postgresAvailable)('Step ids on PostgreSQL', () => stepIds('postgres'));
describe('Step ids on the embedded database', () => stepIds('pglite'));
