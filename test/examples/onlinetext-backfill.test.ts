/**
 * The example site's expand → backfill → contract change (releases 5 and 6), as an operator
 * meets it on PostgreSQL: the pre step, the main upgrade queueing the background migration,
 * the release-5 route answering 503 "still being upgraded" for an old row and 200 once it is
 * migrated, release 6 refused with the coded error until `background finish`, then accepted
 * with its post step held back while a release-5 front is alive and run once it is gone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { outageless } from '../../src/fastify/plugin.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';

const ROWS = 300;
const MIGRATION = 'assignsubmission_onlinetext/onlinetext_content';

describe.skipIf(!postgresAvailable)('example site releases 5 and 6: expand, backfill, contract (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let database: SiteDatabase;
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url], { timeoutMs: 90_000 });
  const columns = async () =>
    (await sql<{ column_name: string }>`select column_name from information_schema.columns where table_name = 'assignsubmission_onlinetext' order by ordinal_position`.execute(database.db)).rows.map((row) => row.column_name);

  beforeAll(async () => {
    scratch = await createScratchDatabase('onlinetext_backfill');
    site = await createSiteDir(4);
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    database = await openDatabase(scratch.url);
    await sql`insert into "user" (username, email) select 'student' || g, 'student' || g || '@example.com' from generate_series(1, ${ROWS}) g`.execute(database.db);
    await sql`insert into assign (course, name) select id, 'Essay' from course where shortname = 'site'`.execute(database.db);
    await sql`insert into assign_submission (assignment, userid) select (select max(id) from assign), id from "user" where username like 'student%'`.execute(database.db);
    await sql`insert into assignsubmission_onlinetext (submission, onlinetext, onlineformat) select id, 'Essay ' || id, id % 3 from assign_submission`.execute(database.db);
  }, 120_000);
  afterAll(async () => {
    await database?.close();
    await site?.cleanup();
    await scratch?.drop();
  });

  it('pre step, queued migration, 503 then 200 from ensureDone, gated release 6, post drop', async () => {
    await site.deploy(5);
    const pre = await run(['upgrade', '--phase', 'pre', '--non-interactive']);
    expect(pre.code, pre.stderr).toBe(0);
    expect(await columns()).toEqual(['id', 'submission', 'onlinetext', 'onlineformat', 'content']);
    const main = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(main.code, main.stderr).toBe(0);
    const queued = JSON.parse((await run(['background', 'status', '--json'])).stdout).backgroundMigrations;
    expect(queued).toEqual([expect.objectContaining({ name: MIGRATION, state: 'queued', cursor: null, keysTotal: ROWS })]);

    // A release-5 front that does not work the migration itself.
    const front: FastifyInstance = Fastify();
    await front.register(outageless, { root: site.root, database, adminSecret: 'x'.repeat(32), jobs: false, heartbeatMs: 60_000 });
    const { id: last } = await database.db.selectFrom('assignsubmission_onlinetext').select((eb) => eb.fn.max('id').as('id')).executeTakeFirstOrThrow();
    const read = (id: unknown) => front.inject({ method: 'GET', url: `/assignsubmission_onlinetext/text/${id}`, headers: { accept: 'application/json' } });
    const waiting = await read(last);
    expect(waiting.statusCode).toBe(503);
    expect(Number(waiting.headers['retry-after'])).toBeGreaterThan(0);
    expect(waiting.json().error).toMatchObject({ code: 'OUTAGELESS_NOT_UPGRADED_YET', message: 'This item is still being upgraded, please try again later', migration: MIGRATION });

    // New code writes both shapes, so a row it writes needs no migration.
    const [fresh] = await sql<{ id: string }>`insert into assign_submission (assignment, userid) select max(assignment), (select id from "user" where username = 'admin') from assign_submission returning id`.execute(database.db).then((result) => result.rows);
    const written = await front.inject({ method: 'PUT', url: `/assignsubmission_onlinetext/submission/${fresh!.id}/text`, payload: { text: 'New', format: 'markdown' } });
    expect(written.statusCode, written.body).toBe(200);
    const row = await database.db.selectFrom('assignsubmission_onlinetext').selectAll().where('id', '=', written.json().id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ onlinetext: 'New', onlineformat: 2, content: { text: 'New', format: 'markdown' } });
    expect((await read(written.json().id)).statusCode).toBe(200);

    // Release 6 is gated on the migration: refused before anything runs.
    await site.deploy(6);
    const refused = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_UNFINISHED_PREREQUISITE');
    expect(refused.stderr).toContain(`outageless background finish ${MIGRATION}`);
    expect(await columns()).toContain('onlinetext');

    const finished = await run(['background', 'finish', MIGRATION]);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    await sleep(1100); // the front reads the migrations at most once a second
    const done = await read(last);
    expect(done.statusCode, done.body).toBe(200);
    const old = await database.db.selectFrom('assignsubmission_onlinetext').select(['submission', 'onlineformat']).where('id', '=', last).executeTakeFirstOrThrow();
    expect(done.json().content).toEqual({ text: `Essay ${old.submission}`, format: ['plain', 'html', 'markdown'][old.onlineformat] });
    // Every old row got its content, with the format code turned into a name.
    const mismatched = await sql<{ n: string }>`select count(*) as n from assignsubmission_onlinetext where content is distinct from jsonb_build_object('text', coalesce(onlinetext, ''), 'format', case onlineformat when 1 then 'html' when 2 then 'markdown' else 'plain' end)`.execute(database.db);
    expect(Number(mismatched.rows[0]!.n)).toBe(0);

    // The release-5 front is alive: the upgrade moves the version, the post step stays owed.
    const held = await run(['upgrade', '--no-maintenance', '--non-interactive']);
    expect(held.code, held.stderr).toBe(0);
    expect(held.stdout).not.toContain('Post step assignsubmission_onlinetext/onlinetext_drop_legacy applied');
    expect(await columns()).toContain('onlinetext');
    await front.close();

    // No release-5 front left: the post step runs.
    const upgraded = await run(['upgrade', '--phase', 'post', '--non-interactive']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain('onlinetext_drop_legacy');
    expect(await columns()).toEqual(['id', 'submission', 'content']);
    const checked = await run(['check-schema']);
    expect(checked.code, checked.stdout).toBe(0);
  }, 180_000);
});
