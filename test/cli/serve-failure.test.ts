/**
 * Issue 10: `serve` whose start fails exits with the coded error and leaves the front
 * registry. Before, a component `index.ts` that failed to load printed the error and left the
 * process alive, listening nowhere, registered as a live front that "matches". Spawned,
 * because the exit code and the process ending are the point. PostgreSQL, so the registry
 * can be read while (and after) the front runs.
 */
import { createServer, type Server } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';

const V1 = 2026010100;
const INDEX = 'plugins/local/broken/index.ts';
/** Long enough for a start on a loaded machine; a front that hangs is killed here and fails the test. */
const EXIT_WITHIN_MS = 60_000;

describe.skipIf(!postgresAvailable)('serve exits when its start fails, and leaves no live front', () => {
  let scratch: ScratchDatabase;
  let database: SiteDatabase;
  let site: SiteDir;

  beforeAll(async () => {
    scratch = await createScratchDatabase('serve_failure');
    database = await openDatabase(scratch.url);
    site = await createSiteDir();
    await writeBareCore(site, V1);
    await site.write('plugins/local/broken/version.ts', `import { defineVersion } from 'outageless';\nexport default defineVersion({ component: 'local_broken', version: ${V1}, maturity: 'stable' });\n`);
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
    await site?.cleanup();
  });

  const serve = (port = '0') => cli(['serve', '--root', site.root, '--database', scratch.url, '--port', port], { timeoutMs: EXIT_WITHIN_MS });
  const fronts = async () => (await sql<{ n: number }>`select count(*)::int as n from outageless_front`.execute(database.db)).rows[0]!.n;

  it.each([
    ['throws at import', "throw new Error('index.ts blew up at import');\n", 'index.ts blew up at import'],
    ['has a syntax error', 'export default async function (app) {\n  app.get("/", async () => ({ ok: true })\n', 'could not load'],
  ])('an index.ts that %s: exit 1 with OUTAGELESS_ERR_LOAD_FAILED, registry row removed', async (_, text, message) => {
    await site.write(INDEX, text);
    const started = Date.now();
    const result = await serve();
    // Exit 1 (the coded error's), not 128 (killed by the timer above because it hung).
    expect(result.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(EXIT_WITHIN_MS);
    expect(result.stderr).toContain('OUTAGELESS_ERR_LOAD_FAILED');
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('component: local_broken');
    expect(result.stderr).not.toContain('Unexpected error');
    expect(result.stdout).not.toContain('listening on');
    // The front got as far as registering (the registry table exists), then left it.
    expect(await fronts()).toBe(0);
  });

  describe('a port already taken', () => {
    let blocker: Server;
    let port: number;
    beforeAll(async () => {
      await site.write(INDEX, "export default async function (app) {\n  app.get('/', async () => ({ ok: true }));\n}\n");
      blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      port = (blocker.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

    it('exit 1 with OUTAGELESS_ERR_LISTEN_FAILED and a fix naming --port, registry row removed', async () => {
      const result = await serve(String(port));
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`OUTAGELESS_ERR_LISTEN_FAILED: cannot listen on 127.0.0.1:${port}`);
      expect(result.stderr).toContain(`fix: Another process listens on port ${port}: stop it, or pass another --port.`);
      expect(result.stderr).not.toContain('Unexpected error');
      expect(await fronts()).toBe(0);
    });
  });
});
