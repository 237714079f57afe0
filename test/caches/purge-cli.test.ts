/**
 * `outageless purge-caches [--component]` and the purges after an upgrade, through the real
 * binary: which revisions move (the global one in outageless_flag, per component in
 * outageless_cache_revision), the commands printed after a --no-maintenance upgrade, and
 * --purge-own-caches. Runs on PostgreSQL and on the embedded database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { openDatabase } from '../../src/database/open.ts';
import { readCacheRevisions } from '../../src/state/cache-revisions.ts';
import { readFlags } from '../../src/state/flags.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

/**
 * mod_assign of release 2 plus `extra` new steps (each adds a nullable column: outage none)
 * and a metadata hook asking for its own caches to be purged, so the whole plan is class none.
 */
function assignRelease(extra: number): { version: string; upgrade: string; column: (n: number) => string } {
  const steps = Array.from({ length: extra }, (_, i) => `
    {
      version: ${2026020201 + i},
      id: 'assign_add_note${i + 1}',
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('assign', 'note${i + 1}', { type: 'text', nullable: true });
      },
    },`).join('');
  return {
    version: `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'mod_assign', version: ${2026020200 + extra}, release: '1.1', requires: 2026010100, maturity: 'stable', subplugins: { assignsubmission: 'submission' } });
`,
    upgrade: `import { defineUpgrade } from 'outageless';
export default defineUpgrade({
  steps: [
    {
      version: 2026020100,
      id: 'assign_add_duedate',
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true });
        await schema.addIndex('assign', { columns: ['duedate'] });
      },
    },${steps}
  ],
  metadata: (oldVersion) => ({ maintenance: 'none', purgeCaches: oldVersion < ${2026020200 + extra} ? 'own' : 'none' }),
});
`,
    column: (n) => `note${n}: { type: 'text', nullable: true },`,
  };
}

function purgeSuite(kind: 'postgres' | 'pglite') {
  let site: SiteDir;
  let database: string;
  let scratch: ScratchDatabase | undefined;
  let embeddedDir: string | undefined;
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', database]);

  /** The global revision and every component's, read from the database the CLI wrote. */
  const revisions = async (): Promise<{ global: number; components: Record<string, number> }> => {
    const opened = await openDatabase(database);
    try {
      return { global: (await readFlags(opened.db)).cacheRevision, components: Object.fromEntries(await readCacheRevisions(opened.db)) };
    } finally {
      await opened.close();
    }
  };

  /** Deploys mod_assign with `extra` new none-class steps and a metadata hook asking 'own'. */
  const deployAssign = async (extra: number) => {
    const release = assignRelease(extra);
    await site.write('plugins/mod/assign/version.ts', release.version);
    await site.write('plugins/mod/assign/db/upgrade.ts', release.upgrade);
    await site.edit('plugins/mod/assign/db/schema.ts', (text) =>
      text.replace(/duedate: \{ type: 'timestamp', nullable: true \},(\n\s*note\d+: .*)*/, (match) => `${match}\n        ${release.column(extra)}`));
  };

  beforeAll(async () => {
    site = await createSiteDir(2);
    if (kind === 'postgres') {
      scratch = await createScratchDatabase('caches');
      database = scratch.url;
    } else {
      embeddedDir = await mkdtemp(join(tmpdir(), 'outageless-caches-'));
      database = await embeddedDatabaseUrl(join(embeddedDir, 'db'));
    }
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
  });

  afterAll(async () => {
    await site?.cleanup();
    await scratch?.drop();
    if (embeddedDir) await rm(embeddedDir, { recursive: true, force: true });
  });

  it('purge-caches moves the global revision and no component\'s', async () => {
    const before = await revisions();
    expect(before.global).toBe(1); // the fresh install purged everything
    const purged = await run(['purge-caches']);
    expect(purged.code, purged.stderr).toBe(0);
    expect(purged.stdout).toContain(`Caches purged (revision ${before.global + 1}).`);
    expect(await revisions()).toEqual({ global: before.global + 1, components: before.components });
    const status = JSON.parse((await run(['status', '--json'])).stdout);
    expect(status.flags.cacheRevision).toBe(before.global + 1);
  });

  it('purge-caches --component mod_assign moves only mod_assign\'s revision', async () => {
    const before = await revisions();
    const purged = await run(['purge-caches', '--component', 'mod_assign', '--json']);
    expect(purged.code, purged.stderr).toBe(0);
    expect(JSON.parse(purged.stdout)).toEqual({ purged: 'component', component: 'mod_assign', revision: 1 });
    expect(await revisions()).toEqual({ global: before.global, components: { mod_assign: 1 } });
  });

  it('purge-caches --component for a component not on disk is a typed error, and moves nothing', async () => {
    const before = await revisions();
    const refused = await run(['purge-caches', '--component', 'mod_nope']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_UNKNOWN_COMPONENT: no component "mod_nope" on disk');
    expect(refused.stderr).toContain('fix: ');
    expect(await revisions()).toEqual(before);
  });

  it('--no-maintenance: an "own" purge is printed as one command per component, and nothing is purged', async () => {
    await deployAssign(1);
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code, required.stdout).toBe(3);
    expect(required.stdout).toContain('metadata(2026020100) asks for cache purge own');

    const before = await revisions();
    const upgraded = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain('Purge caches after all traffic runs the new code:\n  outageless purge-caches --component mod_assign\n');
    expect(upgraded.stdout).not.toMatch(/outageless purge-caches\s*$/m);
    expect(await revisions()).toEqual(before);
  });

  it('--no-maintenance --purge-own-caches: mod_assign\'s revision moves, the global one does not', async () => {
    await deployAssign(2);
    const before = await revisions();
    const upgraded = await run(['upgrade', '--no-maintenance', '--non-interactive', '--purge-own-caches']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain(`Caches purged (--purge-own-caches):\n  outageless purge-caches --component mod_assign    # done: revision ${before.components.mod_assign! + 1}`);
    expect(upgraded.stdout).not.toContain('Purge caches after all traffic');
    expect(await revisions()).toEqual({ global: before.global, components: { ...before.components, mod_assign: before.components.mod_assign! + 1 } });
  });

  it('a maintenance-mode run purges only the components that asked for "own"', async () => {
    await deployAssign(3);
    const before = await revisions();
    const upgraded = await run(['upgrade', '--non-interactive', '--json']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const result = JSON.parse(upgraded.stdout);
    expect(result.purged).toBe(true);
    expect(result.purgeCaches).toEqual({ kind: 'own', components: ['mod_assign'] });
    expect(await revisions()).toEqual({ global: before.global, components: { ...before.components, mod_assign: before.components.mod_assign! + 1 } });
  });

  it('--purge-own-caches leaves an "all" purge to the operator: it is only printed', async () => {
    await site.edit('core/version.ts', (text) => text.replace(/version: (\d{10})/, (_, v: string) => `version: ${Number(v) + 1}`));
    const before = await revisions();
    const upgraded = await run(['upgrade', '--no-maintenance', '--non-interactive', '--purge-own-caches']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain('Purge caches after all traffic runs the new code:\n  outageless purge-caches\n');
    expect(upgraded.stdout).not.toContain('--purge-own-caches)');
    expect(await revisions()).toEqual(before);
    const check = await run(['check-schema']);
    expect(check.code, check.stdout).toBe(0);
  });
}

describe.skipIf(!postgresAvailable)('cache purges (PostgreSQL)', () => purgeSuite('postgres'));
// On the embedded database only where PostgreSQL is missing: purges are rows and NOTIFY, and
// PGlite's in-process NOTIFY is covered by test/caches/store.test.ts.
describe.skipIf(postgresAvailable)('cache purges (embedded database, no PostgreSQL server)', () => purgeSuite('pglite'));
