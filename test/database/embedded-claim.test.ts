/**
 * An embedded (PGlite) site serves one process: a second process gets a clear error telling
 * it to use PostgreSQL, and a claim left by a dead process is taken over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/database/open.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';

describe('embedded database claim', () => {
  let dir: string;
  let site: SiteDir;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outageless-claim-'));
    site = await createSiteDir(1);
  });
  afterAll(async () => {
    await site.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a second process with OUTAGELESS_ERR_EMBEDDED_IN_USE and exit 5', async () => {
    const url = `pglite://${join(dir, 'db')}`;
    const held = await openDatabase(url);
    try {
      const second = await cli(['upgrade', '--is-pending', '--root', site.root, '--database', url]);
      expect(second.code).toBe(5);
      expect(second.stderr).toContain('OUTAGELESS_ERR_EMBEDDED_IN_USE');
      expect(second.stderr).toContain(`pid ${process.pid}`);
      expect(second.stderr).toMatch(/use PostgreSQL/);
    } finally {
      await held.close();
    }
    expect((await cli(['upgrade', '--is-pending', '--root', site.root, '--database', url])).code).toBe(2);
  });

  it('shares one instance between opens in the same process', async () => {
    const url = `pglite://${join(dir, 'shared')}`;
    const [a, b] = [await openDatabase(url), await openDatabase(url)];
    await a.db.schema.createTable('shared_probe').addColumn('id', 'integer').execute();
    await a.close();
    const tables = await b.db.introspection.getTables();
    expect(tables.map((t) => t.name)).toContain('shared_probe');
    await b.close();
  });

  it('takes over a claim whose process is gone', async () => {
    const url = `pglite://${join(dir, 'stale')}`;
    // A pid far above pid_max never runs.
    await writeFile(`${join(dir, 'stale')}.lock`, JSON.stringify({ pid: 2 ** 30, host: hostname(), since: new Date().toISOString() }));
    const result = await cli(['upgrade', '--is-pending', '--root', site.root, '--database', url]);
    expect(result.code, result.stderr).toBe(2);
  });
});
