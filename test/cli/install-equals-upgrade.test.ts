/**
 * Install of release 3 and install of release 1 + upgrade to 2 + upgrade to 3 give the same
 * schema: `check-schema` exits 0 on both, and the introspected schemas compare equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { openDatabase } from '../../src/database/open.ts';
import { introspectSchema } from '../../src/schema/introspect.ts';
import { isStateTable } from '../../src/state/tables.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

async function introspect(url: string) {
  const database = await openDatabase(url);
  try {
    return await introspectSchema(database.db, { exclude: isStateTable });
  } finally {
    await database.close();
  }
}

function equality(kind: 'postgres' | 'pglite') {
  const cleanups: (() => Promise<void>)[] = [];
  let direct: string;
  let stepwise: string;
  let fresh: SiteDir;
  let upgraded: SiteDir;

  async function database(label: string): Promise<string> {
    if (kind === 'postgres') {
      const scratch: ScratchDatabase = await createScratchDatabase(label);
      cleanups.push(() => scratch.drop());
      return scratch.url;
    }
    const dir = await mkdtemp(join(tmpdir(), `outageless-${label}-`));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return embeddedDatabaseUrl(join(dir, 'db'));
  }

  const upgrade = (site: SiteDir, url: string) => cli(['upgrade', '--non-interactive', '--root', site.root, '--database', url]);

  beforeAll(async () => {
    [direct, stepwise] = await Promise.all([database('direct'), database('stepwise')]);
    [fresh, upgraded] = await Promise.all([createSiteDir(3), createSiteDir(1)]);
    cleanups.push(() => fresh.cleanup(), () => upgraded.cleanup());
  });
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('installs release 3 directly', async () => {
    const install = await upgrade(fresh, direct);
    expect(install.code, install.stderr).toBe(0);
    const check = await cli(['check-schema', '--root', fresh.root, '--database', direct]);
    expect(check.code, check.stdout).toBe(0);
  });

  it('installs release 1 and upgrades through 2 to 3', async () => {
    expect((await cli(['check-schema', '--root', upgraded.root, '--database', stepwise])).code).toBe(2);
    for (const release of [1, 2, 3]) {
      await upgraded.deploy(release);
      const result = await upgrade(upgraded, stepwise);
      expect(result.code, `release ${release}: ${result.stderr}`).toBe(0);
      const check = await cli(['check-schema', '--root', upgraded.root, '--database', stepwise]);
      expect(check.code, `release ${release}: ${check.stdout}`).toBe(0);
    }
  });

  it('gives equal introspected schemas', async () => {
    const [a, b] = [await introspect(direct), await introspect(stepwise)];
    expect(Object.keys(a.tables).length).toBeGreaterThan(10);
    expect(b).toEqual(a);
  });

  it('check-schema lists a drifted column and exits 1', async () => {
    const opened = await openDatabase(stepwise);
    try {
      await opened.db.schema.alterTable('assign').dropColumn('duedate').execute();
    } finally {
      await opened.close();
    }
    const check = await cli(['check-schema', '--root', upgraded.root, '--database', stepwise]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/mod_assign.*assign.*duedate/);
  });
}

describe.skipIf(!postgresAvailable)('install equals upgrade on PostgreSQL', () => equality('postgres'));
describe('install equals upgrade on the embedded database', () => equality('pglite'));
