/**
 * Issue 11, items 2 and 3: the step's connection, or the upgrade lock's, terminated with
 * pg_terminate_backend in the middle of a step. Either way the CLI ends with a coded error
 * (no "Unhandled 'error' event" crash), the upgrade log has a `failed` row, the rerun
 * resumes at the step, and nothing is applied twice. When the lock's connection dies the
 * step stops at once, so a second upgrader never runs the same body beside it.
 * PostgreSQL, real binary.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

if (!postgresAvailable) console.warn('[connection-loss] PostgreSQL unavailable: these tests are SKIPPED.');

const V1 = 2026010100;
const V2 = 2026010200;
const LOCKED_EXIT = 4;
/** How long the second step's statement sleeps unless CONN_FAST is set: far longer than any wait below. */
const SLEEP_SECONDS = 8;

/**
 * `local_conn`, release 2: `conn_first` records itself; `conn_second` records itself in its
 * transaction, notes "start" in STEPS_FILE, runs one long statement, then notes "end".
 * A body that ran past its statement after losing the lock would leave an "end".
 */
async function writeConn(site: SiteDir, release: 1 | 2, outage: 'none' | 'component'): Promise<void> {
  const dir = 'plugins/local/conn';
  await site.write(`${dir}/version.ts`, `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_conn', version: ${release === 1 ? V1 : V2 + 1}, requires: ${V1}, maturity: 'stable', maintenance: { disableable: true } });
`);
  await site.write(`${dir}/db/schema.ts`, `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: { local_conn_run: { columns: { id: { type: 'bigint', autoIncrement: true }, step: { type: 'varchar(50)' } }, primaryKey: ['id'] } },
});
`);
  const steps = release === 1 ? '' : `{
    version: ${V2},
    id: 'conn_first',
    outage: '${outage}',
    async run({ db }) {
      await db.insertInto('local_conn_run').values({ step: 'conn_first' }).execute();
    },
  }, {
    version: ${V2 + 1},
    id: 'conn_second',
    outage: '${outage}',
    async run({ db }) {
      ${outage === 'none' ? `// Online: no transaction, so it guards its own rerun.
      const done = await db.selectFrom('local_conn_run').select('id').where('step', '=', 'conn_second').executeTakeFirst();
      if (!done) ` : ''}await db.insertInto('local_conn_run').values({ step: 'conn_second' }).execute();
      appendFileSync(process.env.STEPS_FILE, 'start ' + process.pid + '\\n');
      await db.selectNoFrom((eb) => eb.fn('pg_sleep', [eb.val(process.env.CONN_FAST ? 0 : ${SLEEP_SECONDS})]).as('slept')).execute();
      appendFileSync(process.env.STEPS_FILE, 'end ' + process.pid + '\\n');
    },
  }`;
  await site.write(`${dir}/db/upgrade.ts`, `import { appendFileSync } from 'node:fs';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${steps}] });
`);
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!postgresAvailable)('A connection terminated mid-step (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  let files: string;

  const stepsFile = () => join(files, 'steps');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    cli([...args, '--root', site.root, '--database', scratch.url], { env: { STEPS_FILE: stepsFile(), ...env } });
  const query = async <T = any>(text: string, values: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as T[];
    } finally {
      await client.end();
    }
  };
  const stepLines = () => (existsSync(stepsFile()) ? readFileSync(stepsFile(), 'utf8').trim().split('\n') : []);
  /** The backend running the step's long statement. */
  const stepBackend = async () => (await query<{ pid: number }>(
    `select pid from pg_stat_activity where datname = current_database() and state = 'active' and query like '%pg_sleep%' and pid <> pg_backend_pid()`))[0]?.pid;
  const lockBackend = async () => (await query<{ pid: number }>(
    `select pid from pg_stat_activity where datname = current_database() and application_name like 'outageless-upgrade %'`))[0]?.pid;

  beforeAll(async () => {
    scratch = await createScratchDatabase('connection_loss');
  });
  afterAll(async () => {
    await scratch?.drop();
  });
  beforeEach(async () => {
    await query('drop schema public cascade; create schema public');
    site = await createSiteDir(1);
    files = await mkdtemp(join(tmpdir(), 'outageless-conn-'));
  });
  afterEach(async () => {
    await site?.cleanup();
    await rm(files, { recursive: true, force: true });
  });

  /** Installs release 1, deploys release 2 and starts the upgrade; resolves once conn_second sleeps. */
  async function startBlockedUpgrade(args: string[], outage: 'none' | 'component') {
    await writeConn(site, 1, outage);
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
    await writeConn(site, 2, outage);
    const upgrade = run(['upgrade', '--non-interactive', ...args]);
    await waitFor('conn_second to run its long statement', async () => stepLines().length > 0 && (await stepBackend()) !== undefined);
    // Wrapped: an async function returning the CLI's thenable would wait for it to finish.
    return { upgrade };
  }

  /** The rerun resumes at conn_second and applies each step once. */
  async function expectCleanResume(args: string[]) {
    const rerun = await run(['upgrade', '--non-interactive', ...args], { CONN_FAST: '1' });
    expect(rerun.code, `${rerun.stdout}\n${rerun.stderr}`).toBe(0);
    expect((await query(`select version::int from outageless_component where component = 'local_conn'`))[0]).toEqual({ version: V2 + 1 });
    const rows = await query<{ step: string; count: number }>('select step, count(*)::int as count from local_conn_run group by step order by step');
    expect(rows).toEqual([{ step: 'conn_first', count: 1 }, { step: 'conn_second', count: 1 }]);
    const applied = await query<{ step_id: string; count: number }>(
      `select step_id, count(*)::int as count from outageless_upgrade_log where status = 'applied' and component = 'local_conn' group by step_id order by step_id`);
    expect(applied).toEqual([{ step_id: 'conn_first', count: 1 }, { step_id: 'conn_second', count: 1 }]);
    expect(await query('select * from outageless_component_state')).toEqual([]);
  }

  const failedRows = () => query<{ step_id: string; error: string }>(
    `select step_id, error from outageless_upgrade_log where status = 'failed' and component = 'local_conn'`);

  it('the step connection terminated: OUTAGELESS_ERR_STEP_FAILED, exit 1, a failed log row, and a clean resume', async () => {
    const { upgrade } = await startBlockedUpgrade([], 'component');
    const pid = await stepBackend();
    await query('select pg_terminate_backend($1)', [pid]);
    const result = await upgrade;
    expect(result.stderr).not.toContain("Unhandled 'error' event");
    expect(result.stderr).toContain('OUTAGELESS_ERR_STEP_FAILED');
    expect(result.stderr).toContain('conn_second');
    expect(result.code, result.stderr).toBe(1);
    const failed = await failedRows();
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ step_id: 'conn_second' });
    expect(failed[0]!.error).toMatch(/terminat/i);
    expect(stepLines().filter((line) => line.startsWith('end'))).toEqual([]);
    await expectCleanResume([]);
  });

  for (const [label, args, outage] of [
    ['in a transactional step', [], 'component'],
    ['in an online step of a staged upgrade', ['--no-maintenance'], 'none'],
  ] as const) {
    it(`the lock connection terminated ${label}: the step stops at once, OUTAGELESS_ERR_UPGRADE_LOCK_LOST, a failed log row, and a clean resume`, async () => {
      const { upgrade } = await startBlockedUpgrade([...args], outage);
      const stepPid = await stepBackend();
      const lockPid = await lockBackend();
      expect(lockPid).toBeDefined();
      const killedAt = Date.now();
      await query('select pg_terminate_backend($1)', [lockPid]);
      // The step's statement must end within moments, not when its sleep would have.
      await waitFor('the step connection to be ended', async () =>
        (await query('select 1 from pg_stat_activity where pid = $1', [stepPid])).length === 0, 3000);
      const result = await upgrade;
      expect(Date.now() - killedAt).toBeLessThan((SLEEP_SECONDS - 2) * 1000);
      expect(result.stderr).not.toContain("Unhandled 'error' event");
      expect(result.stderr).toContain('OUTAGELESS_ERR_UPGRADE_LOCK_LOST');
      expect(result.code, result.stderr).toBe(LOCKED_EXIT);
      expect(await failedRows()).toMatchObject([{ step_id: 'conn_second' }]);
      // The body never got past its statement without the lock.
      expect(stepLines().filter((line) => line.startsWith('end'))).toEqual([]);
      await expectCleanResume([...args]);
    }, 30_000);
  }
});
