/**
 * Crash safety of the runner (README "The run"): a step runs in one transaction with its
 * savepoint, "upgrade running" is derived from a session advisory lock, and a failed step
 * rolls back so the next run resumes at it. All on PostgreSQL, with the real binary.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const V1 = 2026010100;
const V2 = 2026020100;
const V3 = 2026020200;

/** A test component `plugins/local/<name>`: version, schema columns and the upgrade steps' source. */
async function writeLocalPlugin(site: SiteDir, name: string, plugin: { version: number; columns: Record<string, string>; steps?: string }): Promise<void> {
  const dir = `plugins/local/${name}`;
  const columns = Object.entries(plugin.columns).map(([column, definition]) => `${column}: ${definition}`).join(', ');
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_${name}', version: ${plugin.version}, requires: ${V1}, maturity: 'stable' });
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: { local_${name}_item: { columns: { ${columns} }, primaryKey: ['id'] } },
});
`);
  await site.write(`${dir}/db/upgrade.ts`, `import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${plugin.steps ?? ''}] });
`);
}

const ITEM_COLUMNS = {
  id: `{ type: 'bigint', autoIncrement: true }`,
  name: `{ type: 'varchar(50)' }`,
  points: `{ type: 'integer', default: 0 }`,
};

/** Release 2 of local_slow: a step that changes data in its transaction, then blocks on a signal file. */
const SLOW_RELEASE_2 = {
  version: V2,
  columns: { ...ITEM_COLUMNS, score: `{ type: 'integer', nullable: true }` },
  steps: `{
    version: ${V2},
    id: 'slow_add_score',
    outage: 'none',
    async run({ db, schema }) {
      await schema.addColumn('local_slow_item', 'score', { type: 'integer', nullable: true });
      const rows = await db.selectFrom('local_slow_item').select(['id', 'points']).where('score', 'is', null).execute();
      for (const row of rows) await db.updateTable('local_slow_item').set({ score: row.points * 10 }).where('id', '=', row.id).execute();
      writeFileSync(process.env.SLOW_MARKER_FILE, String(process.pid));
      while (!existsSync(process.env.SLOW_SIGNAL_FILE)) await sleep(20);
    },
  }`,
};

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!postgresAvailable)('Killed and failed upgraders (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let files: string;

  const env = () => ({
    SLOW_MARKER_FILE: join(files, 'step-started'),
    SLOW_SIGNAL_FILE: join(files, 'release-step'),
    FLAKY_OK_FILE: join(files, 'flaky-ok'),
    STEP_RUNS_FILE: join(files, 'step-runs'),
  });
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url], { env: env() });
  const statusJson = async () => {
    const status = await run(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    return JSON.parse(status.stdout);
  };
  const query = async <T = any>(text: string, values: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as T[];
    } finally {
      await client.end();
    }
  };
  const columnsOf = async (table: string) =>
    (await query<{ column_name: string }>(`select column_name from information_schema.columns where table_schema = 'public' and table_name = $1 order by column_name`, [table])).map((row) => row.column_name);
  const installedVersion = async (component: string) =>
    (await query<{ version: number }>(`select version::int from outageless_component where component = $1`, [component]))[0]?.version;

  beforeAll(async () => {
    scratch = await createScratchDatabase('kill_resume');
  });
  afterAll(async () => {
    await scratch?.drop();
  });
  beforeEach(async () => {
    await query('drop schema public cascade; create schema public');
    site = await createSiteDir(1);
    files = await mkdtemp(join(tmpdir(), 'outageless-kill-'));
  });
  afterEach(async () => {
    await writeFile(env().SLOW_SIGNAL_FILE, '').catch(() => {});
    await site?.cleanup();
    await rm(files, { recursive: true, force: true });
  });

  it('An upgrader killed with SIGKILL in the middle of a step leaves no upgrade-running state', async () => {
    await writeLocalPlugin(site, 'slow', { version: V1, columns: ITEM_COLUMNS });
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);

    // Pre-existing data in release-1 tables, ours and the example's.
    await query(`insert into course (fullname, shortname) values ('Algebra', 'alg101'), ('Biology', 'bio201')`);
    await query(`insert into assign (course, name, intro, grade)
                 select id, 'Essay ' || shortname, 'Write about ' || fullname, 42.5 from course where shortname in ('alg101', 'bio201')
                 union all select id, 'Quiz prep', null, 10 from course where shortname = 'alg101'`);
    await query(`insert into local_slow_item (name, points) values ('one', 1), ('two', 2), ('three', 3)`);
    const courses = await query('select id, fullname, shortname, format, visible, created from course order by id');
    const assigns = await query('select id, course, name, intro, grade, created from assign order by id');
    const items = await query('select id, name, points from local_slow_item order by id');
    expect(courses).toHaveLength(3); // the site course from core's install, and ours
    expect(assigns).toHaveLength(3);

    // Release 2, plus a step that really changes data in its transaction before it blocks.
    await site.deploy(2);
    await writeLocalPlugin(site, 'slow', SLOW_RELEASE_2);

    const running = run(['upgrade', '--non-interactive']);
    await waitFor('the slow step to block', () => existsSync(env().SLOW_MARKER_FILE) && readFileSync(env().SLOW_MARKER_FILE, 'utf8').length > 0);
    expect((await statusJson()).upgradeRunning).toMatchObject({ pid: running.child.pid });
    // The step has really changed the table inside its open transaction (ADD COLUMN holds this lock).
    const tableLocks = await query<{ mode: string }>(`select l.mode from pg_locks l join pg_class c on c.oid = l.relation
                                                       where c.relname = 'local_slow_item' and l.granted`);
    expect(tableLocks.map((lock) => lock.mode)).toContain('AccessExclusiveLock');
    running.child.kill('SIGKILL');
    const killed = await running;
    expect(killed.code).not.toBe(0);
    expect(killed.stdout).not.toContain('Upgrade complete');

    // The server drops the dead session, and the lock and the open transaction with it.
    const killedAt = Date.now();
    let upgradeRunning: unknown = 'not checked';
    while (Date.now() - killedAt < 5_000) {
      upgradeRunning = (await statusJson()).upgradeRunning;
      if (upgradeRunning === null) break;
    }
    expect(upgradeRunning).toBeNull();
    expect(await columnsOf('local_slow_item')).not.toContain('score');
    expect(await installedVersion('local_slow')).toBe(V1);
    expect(await query(`select * from outageless_upgrade_log where step_id = 'slow_add_score'`)).toEqual([]);
    // Components before local_slow finished and committed before the kill.
    expect(await installedVersion('mod_assign')).toBe(V2);

    await writeFile(env().SLOW_SIGNAL_FILE, '');
    const resumed = await run(['upgrade', '--non-interactive']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/local_slow:\s+step slow_add_score \(2026020100\) applied/);
    expect(resumed.stdout).not.toContain('assign_add_duedate');

    const checked = await run(['check-schema']);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    expect(await query('select id, fullname, shortname, format, visible, created from course order by id')).toEqual(courses);
    expect(await query('select id, course, name, intro, grade, created from assign order by id')).toEqual(assigns);
    expect(await query('select id, name, points from local_slow_item order by id')).toEqual(items);
    expect(await query('select id, score from local_slow_item order by id')).toEqual([
      { id: items[0].id, score: 10 },
      { id: items[1].id, score: 20 },
      { id: items[2].id, score: 30 },
    ]);
    expect(await installedVersion('local_slow')).toBe(V2);
    const after = await statusJson();
    expect(after.upgradeRunning).toBeNull();
    expect(after.pending).toBe(false);
  });

  it('A step that throws is rolled back and logged; the next run resumes at it without re-running earlier steps', async () => {
    await writeLocalPlugin(site, 'flaky', { version: V1, columns: ITEM_COLUMNS });
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    await query(`insert into local_flaky_item (name, points) values ('kept', 7)`);

    // Two steps: the first always works; the second adds a column, then throws until a file exists.
    await writeLocalPlugin(site, 'flaky', {
      version: V3,
      columns: { ...ITEM_COLUMNS, alpha: `{ type: 'integer', nullable: true }`, beta: `{ type: 'integer', nullable: true }` },
      steps: `{
        version: ${V2},
        id: 'flaky_add_alpha',
        outage: 'none',
        async run({ schema }) {
          appendFileSync(process.env.STEP_RUNS_FILE, 'flaky_add_alpha\\n');
          await schema.addColumn('local_flaky_item', 'alpha', { type: 'integer', nullable: true });
        },
      },
      {
        version: ${V3},
        id: 'flaky_add_beta',
        outage: 'none',
        async run({ db, schema }) {
          appendFileSync(process.env.STEP_RUNS_FILE, 'flaky_add_beta\\n');
          await schema.addColumn('local_flaky_item', 'beta', { type: 'integer', nullable: true });
          await db.updateTable('local_flaky_item').set({ beta: 1 }).execute();
          if (!existsSync(process.env.FLAKY_OK_FILE)) throw new Error('flaky data not ready');
        },
      }`,
    });

    const failed = await run(['upgrade', '--non-interactive']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('OUTAGELESS_ERR_STEP_FAILED');
    expect(failed.stderr).toContain('component: local_flaky');
    expect(failed.stderr).toContain('step: flaky_add_beta');
    expect(failed.stderr).toContain('flaky data not ready');
    expect(failed.stdout).toMatch(/local_flaky:\s+step flaky_add_alpha \(2026020100\) applied/);

    const failures = await query(`select component, step_id, version::int, error from outageless_upgrade_log where status = 'failed'`);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ component: 'local_flaky', step_id: 'flaky_add_beta', version: V3 });
    expect(failures[0].error).toContain('flaky data not ready');
    // The savepoint is the last completed step; the failed step's column is gone with its transaction.
    expect(await installedVersion('local_flaky')).toBe(V2);
    const columns = await columnsOf('local_flaky_item');
    expect(columns).toContain('alpha');
    expect(columns).not.toContain('beta');
    expect((await statusJson()).upgradeRunning).toBeNull();
    expect((await run(['upgrade', '--is-pending'])).code).toBe(2);

    await writeFile(env().FLAKY_OK_FILE, '');
    const resumed = await run(['upgrade', '--non-interactive']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/local_flaky:\s+step flaky_add_beta \(2026020200\) applied/);
    expect(resumed.stdout).not.toContain('flaky_add_alpha');

    expect(readFileSync(env().STEP_RUNS_FILE, 'utf8').trim().split('\n')).toEqual(['flaky_add_alpha', 'flaky_add_beta', 'flaky_add_beta']);
    const applied = await query(`select step_id, count(*)::int as count from outageless_upgrade_log
                                  where component = 'local_flaky' and status = 'applied' group by step_id order by step_id`);
    expect(applied).toEqual([
      { step_id: 'flaky_add_alpha', count: 1 },
      { step_id: 'flaky_add_beta', count: 1 },
    ]);
    expect(await installedVersion('local_flaky')).toBe(V3);
    expect(await query('select name, points, alpha, beta from local_flaky_item')).toEqual([{ name: 'kept', points: 7, alpha: null, beta: 1 }]);
    const checked = await run(['check-schema']);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    expect((await run(['upgrade', '--is-pending'])).code).toBe(0);
  });

  // The last step's savepoint and the component's full record (definitions hash, release,
  // code increment) commit in one transaction: killed inside it, neither is left behind.
  it('An upgrader killed after the last step committed but before the component was recorded leaves it complete after a rerun', async () => {
    await writeLocalPlugin(site, 'slow', { version: V1, columns: ITEM_COLUMNS });
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    await site.deploy(2);
    await writeLocalPlugin(site, 'slow', SLOW_RELEASE_2);
    await writeFile(env().SLOW_SIGNAL_FILE, ''); // the step does not block here

    // Hold the upgrader inside the component's final write (an INSERT .. ON CONFLICT on
    // outageless_component; the step's savepoint is a plain UPDATE and passes).
    const gate = new pg.Client({ connectionString: scratch.url });
    await gate.connect();
    try {
      await gate.query('select pg_advisory_lock(4242)');
      await gate.query(`create function test_hold_record() returns trigger language plpgsql as $$
                          begin perform pg_advisory_xact_lock(4242); return new; end $$`);
      await gate.query(`create trigger test_hold_record before insert on outageless_component
                          for each row when (new.component = 'local_slow') execute function test_hold_record()`);

      const running = run(['upgrade', '--non-interactive']);
      await waitFor('the upgrader to block in the final record write', async () =>
        (await query(`select 1 from pg_locks where locktype = 'advisory' and objid = 4242 and not granted`)).length > 0);
      // Not committed yet: the step's savepoint waits for the record in the same transaction.
      expect(await query(`select step_id from outageless_upgrade_log where step_id = 'slow_add_score' and status = 'applied'`)).toHaveLength(0);
      running.child.kill('SIGKILL');
      await running;
      await gate.query('drop trigger test_hold_record on outageless_component; drop function test_hold_record()');
    } finally {
      await gate.end();
    }

    const rerun = await run(['upgrade', '--non-interactive']);
    expect(rerun.code, rerun.stderr).toBe(0);
    const slow = (await statusJson()).components.find((c: { component: string }) => c.component === 'local_slow');
    expect(slow).toMatchObject({ action: 'unchanged', installedVersion: V2, changedFiles: [], reasons: [] });
  });
});
