/**
 * "Not upgraded yet" through the Fastify plugin with `app.inject`: a route that
 * calls `app.outagelessMigrations.ensureDone` (or uses its `requireDone` preHandler) answers
 * 503 with Retry-After for a key the background migration has not reached, and 200 once it
 * has; the rows are read once per second however many requests ask. The admin dashboard
 * shows the migration with its progress. Runs on PostgreSQL and on the embedded database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { outageless } from '../../src/fastify/plugin.ts';
import { createMigrationGate, NOT_UPGRADED_MESSAGE } from '../../src/fastify/migrations.ts';
import { findBackgroundStep, finishBackgroundMigration, runBatch } from '../../src/migrations/engine.ts';
import { queueBackgroundMigration, readBackgroundMigrations } from '../../src/migrations/store.ts';
import type { BackgroundStep } from '../../src/migrations/types.ts';
import type { Front } from '../../src/runtime/front.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const CORE = 2026010100;
const VERSION = 2026010102;
const ROWS = 1000;
const SECRET = 'ensure-done admin secret';
/** A little more than the gate's one-second read interval. */
const TTL_PASSED_MS = 1150;

async function writeSite(site: SiteDir): Promise<void> {
  await writeBareCore(site, CORE);
  const dir = 'plugins/local/bg';
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_bg', version: ${VERSION}, requires: ${CORE}, maturity: 'stable' });
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    local_bg_item: { columns: { id: { type: 'bigint' }, v: { type: 'integer' }, v2: { type: 'integer', nullable: true } }, primaryKey: ['id'] },
  },
});
`);
  await site.write(`${dir}/db/upgrade.ts`, `import { defineUpgrade } from 'outageless';
export default defineUpgrade({
  steps: [
    {
      phase: 'background', version: 2026010101, id: 'fill_v2', description: 'v2 = 2v',
      table: 'local_bg_item', key: 'id', batchSize: { min: 10, initial: 100, max: 100 },
      async batch({ db, from, to }) {
        const result = await db.updateTable('local_bg_item').set((eb) => ({ v2: eb('v', '*', 2) }))
          .where('id', '>=', from).where('id', '<=', to).where('v2', 'is', null).executeTakeFirst();
        return Number(result.numUpdatedRows);
      },
    },
    {
      phase: 'background', version: 2026010102, id: 'never_queued', description: 'installed past it: nothing to migrate',
      table: 'local_bg_item', key: 'id',
      async batch() { return 0; },
    },
  ],
});
`);
  // Reads v2, the new shape, only for rows the migration has reached.
  await site.write(`${dir}/index.ts`, `export default async function routes(app) {
  const read = async (id) => app.outageless.database.db.selectFrom('local_bg_item').select(['id', 'v2']).where('id', '=', id).executeTakeFirst();
  app.get('/item/:id', async (request, reply) => {
    const id = Number(request.params.id);
    if (!(await app.outagelessMigrations.ensureDone(reply, 'local_bg', 'fill_v2', id))) return reply;
    const row = await read(id);
    return row ? { id, v2: row.v2 } : reply.code(404).send({ id, missing: true });
  });
  app.get('/guarded/:id', { preHandler: app.outagelessMigrations.requireDone('local_bg', 'fill_v2', (request) => request.params.id) }, async (request) => ({ id: request.params.id, served: true }));
  app.get('/never-queued/:id', async (request, reply) => {
    if (!(await app.outagelessMigrations.ensureDone(reply, 'local_bg', 'never_queued', Number(request.params.id)))) return reply;
    return { served: true };
  });
  app.get('/typo', async (request, reply) => {
    if (!(await app.outagelessMigrations.ensureDone(reply, 'local_bg', 'fill_v3', 1))) return reply;
    return { served: true };
  });
}
`);
  // Vite (vitest, in process) takes the fraction of an mtime in load.ts's cache-busting query for
  // a file extension; whole-second mtimes keep it out (see test/fastify/guard.test.ts).
  const when = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const entry of await readdir(site.root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && !entry.parentPath.includes('node_modules')) await utimes(join(entry.parentPath, entry.name), when, when);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function ensureDoneSuite(kind: 'postgres' | 'pglite') {
  let site: SiteDir;
  let scratch: ScratchDatabase | undefined;
  let database: SiteDatabase;
  let app: FastifyInstance;
  let step: BackgroundStep;
  const get = (url: string, accept = 'application/json') => app.inject({ method: 'GET', url, headers: { accept } });

  beforeAll(async () => {
    site = await createSiteDir();
    await writeSite(site);
    if (kind === 'postgres') scratch = await createScratchDatabase('ensure_done');
    database = await openDatabase(scratch?.url ?? `pglite://memory/ensure-done-${randomBytes(4).toString('hex')}`);
    const code = await discoverSite(site.root);
    expect((await runUpgrade({ database, code, mode: 'maintenance' })).kind).toBe('upgraded');
    await sql`insert into local_bg_item (id, v) select g, g from generate_series(1, ${ROWS}) g`.execute(database.db);
    step = await findBackgroundStep(code, 'local_bg', 'fill_v2');
    // Installed at its version, so the install queued nothing: queued here as an upgrade would.
    expect((await queueBackgroundMigration(database.db, { component: 'local_bg', step })).queued).toBe(true);
    // A row the new code wrote after the range was read: never part of the migration.
    await sql`insert into local_bg_item (id, v, v2) values (${ROWS + 1}, 1, 2)`.execute(database.db);
    app = Fastify();
    // No jobs: no background worker on this front, so only the test moves the cursor.
    await app.register(outageless, { root: site.root, database, adminSecret: SECRET, jobs: false, heartbeatMs: 60_000 });
    await app.ready();
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await database?.close();
    await scratch?.drop();
    await site?.cleanup();
  });

  it('answers 503 with Retry-After for a key not migrated yet, as JSON or HTML by Accept', async () => {
    const json = await get('/local_bg/item/5');
    expect(json.statusCode).toBe(503);
    expect(Number(json.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(json.headers['cache-control']).toBe('no-store');
    expect(json.json()).toMatchObject({ error: { code: 'OUTAGELESS_NOT_UPGRADED_YET', message: NOT_UPGRADED_MESSAGE, component: 'local_bg', migration: 'local_bg/fill_v2' } });

    const page = await get('/local_bg/item/5', 'text/html');
    expect(page.statusCode).toBe(503);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain(NOT_UPGRADED_MESSAGE);
    expect(page.headers['retry-after']).toBeDefined();

    expect((await get('/local_bg/guarded/5')).statusCode).toBe(503);
    // Not an integer: no row has that key, so the route answers it as it answers any bad id.
    expect((await get('/local_bg/guarded/abc')).statusCode).toBe(200);
    // Added after the range was read: written by the new code, never to be migrated.
    expect((await get(`/local_bg/item/${ROWS + 1}`)).json()).toEqual({ id: ROWS + 1, v2: 2 });
  });

  it('serves a key once the cursor has passed it, and keeps 503 for the keys beyond', async () => {
    const outcome = await runBatch(database.db, { component: 'local_bg', id: 'fill_v2' }, step);
    expect(outcome).toMatchObject({ kind: 'done', from: 1, to: 100 });
    await sleep(TTL_PASSED_MS);
    const served = await get('/local_bg/item/5');
    expect(served.statusCode).toBe(200);
    expect(served.json()).toEqual({ id: 5, v2: 10 });
    expect((await get('/local_bg/item/100')).statusCode).toBe(200);
    expect((await get('/local_bg/guarded/100')).statusCode).toBe(200);
    expect((await get('/local_bg/item/101')).statusCode).toBe(503);
    expect((await get('/local_bg/item/900')).statusCode).toBe(503);
  });

  it('the admin dashboard shows the migration with its progress', async () => {
    const login = await app.inject({ method: 'GET', url: '/admin/login' });
    const token = /name="_csrf" value="([^"]+)"/.exec(login.body)?.[1];
    const cookies = (response: typeof login) => [response.headers['set-cookie'] ?? []].flat().map((line) => line.split(';')[0]!);
    const posted = await app.inject({
      method: 'POST', url: '/admin/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookies(login).join('; ') },
      payload: new URLSearchParams({ _csrf: token ?? '', password: SECRET, next: '/admin' }).toString(),
    });
    expect(posted.statusCode).toBe(303);
    const dashboard = await app.inject({ method: 'GET', url: '/admin', headers: { cookie: [...cookies(login), ...cookies(posted)].join('; ') } });
    expect(dashboard.statusCode).toBe(200);
    expect(dashboard.body).toContain('<h2>Background migrations</h2>');
    expect(dashboard.body).toMatch(/<tr data-migration="local_bg\/fill_v2"><td>local_bg\/fill_v2<\/td><td class="state-running">running<\/td>\s*<td><progress max="100" value="10.0">/);
    expect(dashboard.body).toContain('local_bg_item.id 1..1000, cursor 100');
  });

  it('serves every key once the migration is finished', async () => {
    const finished = await finishBackgroundMigration(database.db, 'local_bg', step);
    expect(finished).toMatchObject({ state: 'finished', cursor: ROWS });
    await sleep(TTL_PASSED_MS);
    for (const id of [101, 500, ROWS]) {
      const response = await get(`/local_bg/item/${id}`);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ id, v2: id * 2 });
    }
  });

  it('a migration never queued because the site was installed past its step serves; an undeclared one is a coded 500', async () => {
    expect((await get('/local_bg/never-queued/5')).statusCode).toBe(200);
    const typo = await get('/local_bg/typo');
    expect(typo.statusCode).toBe(500);
    expect(typo.json()).toMatchObject({ code: 'OUTAGELESS_ERR_ENSURE_DONE_UNKNOWN' });
    expect(typo.json().message).toContain('declares no background migration "fill_v3" (it declares: fill_v2, never_queued)');
  });

  it('a hot route reads the rows once per interval, not once per request', async () => {
    let reads = 0;
    const front = app.outageless as Front;
    const gate = createMigrationGate({ front, ttlMs: 60_000, read: async (db) => ((reads += 1), readBackgroundMigrations(db)) });
    const verdicts = await Promise.all(Array.from({ length: 200 }, (_, i) => gate.check('local_bg', 'fill_v2', i + 1)));
    expect(verdicts.every((verdict) => verdict.kind === 'done')).toBe(true);
    expect(reads).toBe(1);
    const short = createMigrationGate({ front, ttlMs: 50, read: async (db) => ((reads += 1), readBackgroundMigrations(db)) });
    await short.check('local_bg', 'fill_v2', 1);
    await sleep(80);
    await short.check('local_bg', 'fill_v2', 1);
    expect(reads).toBe(3);
  });
}

describe.skipIf(!postgresAvailable)('ensureDone on PostgreSQL', () => ensureDoneSuite('postgres'));
describe('ensureDone on the embedded database', () => ensureDoneSuite('pglite'));
