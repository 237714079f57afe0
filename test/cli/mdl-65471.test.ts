/**
 * The CLI-only steps of the MDL-65471 test plan (../shared/seeds/002_*.txt: steps 1–7,
 * 16–20, 30–37) against the example site, with the exit codes of DESIGN §4.2. "Container 1"
 * is the real `outageless` binary; editing PHP files becomes editing the component's .ts.
 * Runs on PostgreSQL, or on the embedded database where there is no server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const bumpVersion = (by: number) => (text: string) => text.replace(/version: (\d{10})/, (_, v: string) => `version: ${Number(v) + by}`);

function mdlPlan(kind: 'postgres' | 'pglite') {
  let site: SiteDir;
  let database: string;
  let scratch: ScratchDatabase | undefined;
  let embeddedDir: string | undefined;
  const run = (args: string[], input?: string) => cli([...args, '--root', site.root, '--database', database], input === undefined ? {} : { input });
  const statusJson = async () => JSON.parse((await run(['status', '--json'])).stdout);

  beforeAll(async () => {
    site = await createSiteDir(2);
    if (kind === 'postgres') {
      scratch = await createScratchDatabase('mdl65471');
      database = scratch.url;
    } else {
      embeddedDir = await mkdtemp(join(tmpdir(), 'outageless-mdl-'));
      database = await embeddedDatabaseUrl(join(embeddedDir, 'db'));
    }
    // Pre-requisite: a clean install sets the initial component hash state.
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
  });

  afterAll(async () => {
    await site?.cleanup();
    await scratch?.drop();
    if (embeddedDir) await rm(embeddedDir, { recursive: true, force: true });
  });

  it('steps 1–2: a core version bump upgrades after confirmation at the prompt', async () => {
    await site.edit('core/version.ts', bumpVersion(1));
    const refused = await run(['upgrade'], 'n\n');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_NOT_CONFIRMED');
    expect((await statusJson()).components.find((c: { component: string }) => c.component === 'core').installedVersion).toBe(2026020100);

    const accepted = await run(['upgrade'], 'y\n');
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain('Upgrade complete');
    expect((await statusJson()).components.find((c: { component: string }) => c.component === 'core').installedVersion).toBe(2026020101);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
  });

  it('steps 3–5: a mod_assign version bump with db/ unchanged is pending', async () => {
    await site.edit('plugins/mod/assign/version.ts', bumpVersion(1));
    const pending = await run(['upgrade', '--is-pending']);
    expect(pending.code).toBe(2);
    expect(pending.stdout).toMatch(/mod_assign\s+2026020100 -> 2026020101\s+none/);
  });

  it('steps 6–7: maintenance is NOT required, and the upgrade is still pending', async () => {
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(3);
    expect(required.stdout).toContain('code-only change: db/ unchanged');
    expect(required.stdout).toContain('Maintenance is NOT required');
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);
  });

  it('steps 10 and 13 (CLI side): the UI upgrade lock is set and cleared with --is-maintenance-required', async () => {
    const set = await run(['upgrade', '--is-maintenance-required', '--set-ui-upgrade-lock']);
    expect(set.code).toBe(3);
    expect((await statusJson()).flags.uiUpgradeLock).toBe(true);
    const unset = await run(['upgrade', '--is-maintenance-required', '--unset-ui-upgrade-lock']);
    expect(unset.code).toBe(3);
    expect((await statusJson()).flags.uiUpgradeLock).toBe(false);
  });

  it('steps 16–18: editing mod_assign db/tasks.ts keeps the upgrade pending', async () => {
    await site.edit('plugins/mod/assign/db/tasks.ts', (text) => text.replace("'*/5 * * * *'", "'1 * * * *'"));
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);
  });

  it('steps 19–20: with db/ changed and nothing vouching for it, maintenance IS required', async () => {
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(2);
    expect(required.stdout).toContain('Maintenance IS required');
    expect(required.stdout).toMatch(/mod_assign: db\/tasks\.ts changed and no pending step or metadata hook vouches for it/);
    // The lock is only taken when no maintenance is needed.
    const lock = await run(['upgrade', '--is-maintenance-required', '--set-ui-upgrade-lock']);
    expect(lock.code).toBe(2);
    expect((await statusJson()).flags.uiUpgradeLock).toBe(false);
  });

  it('steps 30–32: --no-maintenance refuses a db/ change, says so, and does nothing', async () => {
    const before = await statusJson();
    const refused = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('This upgrade WILL result in maintenance mode');
    const after = await statusJson();
    expect(after.components).toEqual(before.components);
    expect(after.flags).toEqual(before.flags);
    // The alias behaves the same.
    expect((await run(['upgrade', '--no-outage', '--non-interactive'])).code).toBe(2);
  });

  it('steps 33–37: after reverting tasks.ts, --no-maintenance --set-ui-upgrade-lock completes and prints the cache purge', async () => {
    await site.edit('plugins/mod/assign/db/tasks.ts', (text) => text.replace("'1 * * * *'", "'*/5 * * * *'"));
    const upgraded = await run(['upgrade', '--no-maintenance', '--set-ui-upgrade-lock'], 'y\n');
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain('Upgrade complete');
    expect(upgraded.stdout).toContain('no maintenance');
    expect(upgraded.stdout).toContain('outageless purge-caches');
    const status = await statusJson();
    expect(status.flags.uiUpgradeLock).toBe(true);
    expect(status.flags.maintenance.enabled).toBe(false);
    expect(status.components.find((c: { component: string }) => c.component === 'mod_assign').installedVersion).toBe(2026020101);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
    expect((await run(['upgrade', '--is-maintenance-required'])).code).toBe(0);
    expect((await run(['check-schema'])).code).toBe(0);
  });
}

describe.skipIf(!postgresAvailable)('MDL-65471 CLI steps on PostgreSQL', () => mdlPlan('postgres'));
// On the embedded database only where PostgreSQL is missing: the same CLI paths run on PGlite
// in bad-input, install-equals-upgrade, step-ids and the pack smoke test, and each CLI start
// there boots PGlite's WebAssembly, which made this file the suite's longest but one.
describe.skipIf(postgresAvailable)('MDL-65471 CLI steps on the embedded database (no PostgreSQL server)', () => mdlPlan('pglite'));
