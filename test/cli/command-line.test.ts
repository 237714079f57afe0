/**
 * The command line as an operator meets it (issue 11, items 12-16): usage errors on every
 * subcommand exit 64 with commander's own text, flags that contradict each other are refused
 * before anything is opened, a bad database URL is echoed without its password, a failed step
 * that ran outside a transaction is not reported as rolled back, and a `pglite://` path that is
 * not a directory is a coded error instead of a stack trace.
 *
 * Everything runs the real binary (dist/) against embedded databases in a temp directory; one
 * PostgreSQL case covers the non-transactional step there, skipped without a server.
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, postgresAvailable } from '../support/databases.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'outageless-cli-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** No stack trace and no "please report it": the output of a handled error. */
function expectNoCrash(stderr: string): void {
  expect(stderr).not.toContain('Unexpected error');
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('usage errors on subcommands (item 12)', () => {
  const cases: readonly { readonly args: readonly string[]; readonly text: RegExp }[] = [
    { args: ['upgrade', '--bogus'], text: /unknown option '--bogus'/ },
    { args: ['upgrade', '--wait'], text: /option '--wait <seconds>' argument missing/ },
    { args: ['upgrade', '--lock-timeout'], text: /option '--lock-timeout <ms>' argument missing/ },
    { args: ['status', '--bogus'], text: /unknown option '--bogus'/ },
    { args: ['check-schema', '--database'], text: /option '--database <url>' argument missing/ },
    { args: ['purge-caches', '--bogus'], text: /unknown option '--bogus'/ },
    { args: ['serve', '--bogus'], text: /unknown option '--bogus'/ },
    { args: ['lint', '--bogus'], text: /unknown option '--bogus'/ },
    { args: ['rehearse', '--bogus'], text: /unknown option '--bogus'/ },
    // Nested one level further down.
    { args: ['maintenance', 'enable', '--bogus'], text: /unknown option '--bogus'/ },
    { args: ['maintenance', 'disable', '--root'], text: /option '--root <dir>' argument missing/ },
  ];

  for (const { args, text } of cases) {
    it(`${args.join(' ')} exits 64 with commander's message`, async () => {
      const result = await cli([...args]);
      expect(result.stderr).toMatch(text);
      expect(result.code).toBe(64);
      expectNoCrash(result.stderr);
    });
  }

  it('an unknown option on the root still exits 64, and help on a subcommand exits 0', async () => {
    expect((await cli(['--bogus'])).code).toBe(64);
    const help = await cli(['upgrade', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--is-pending');
    const nested = await cli(['maintenance', 'enable', '--help']);
    expect(nested.code).toBe(0);
  });
});

describe('conflicting upgrade flags (item 13)', () => {
  const conflicts: readonly (readonly [string, string])[] = [
    ['--is-pending', '--no-maintenance'],
    ['--is-pending', '--no-outage'],
    ['--is-pending', '--is-maintenance-required'],
    ['--is-pending', '--set-ui-upgrade-lock'],
    ['--is-pending', '--unset-ui-upgrade-lock'],
    ['--is-pending', '--purge-own-caches'],
    ['--is-maintenance-required', '--no-maintenance'],
    ['--is-maintenance-required', '--no-outage'],
    ['--is-maintenance-required', '--purge-own-caches'],
    ['--set-ui-upgrade-lock', '--unset-ui-upgrade-lock'],
  ];

  for (const [first, second] of conflicts) {
    it(`${first} ${second} is a usage error naming both, before the database is opened`, async () => {
      const root = await mkdtemp(join(scratch, 'conflict-'));
      for (const args of [[first, second], [second, first]]) {
        const result = await cli(['upgrade', ...args, '--root', root]);
        expect(result.stderr).toContain('OUTAGELESS_ERR_USAGE');
        expect(result.stderr).toContain(first);
        expect(result.stderr).toContain(second);
        expect(result.code).toBe(64);
        expectNoCrash(result.stderr);
      }
      // Refused before anything was opened: the default embedded database was never created.
      expect(existsSync(join(root, '.outageless'))).toBe(false);
    });
  }

  it('--json prints the usage error as JSON', async () => {
    const result = await cli(['upgrade', '--is-pending', '--no-maintenance', '--json', '--root', scratch]);
    expect(result.code).toBe(64);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'OUTAGELESS_ERR_USAGE' } });
  });

  it('combinations that make sense are still accepted', async () => {
    const site = await createSiteDir(1);
    try {
      const url = `pglite://${join(site.root, 'db')}`;
      // Moodle's pairing: report and take the UI lock when no maintenance is needed.
      const report = await cli(['upgrade', '--is-maintenance-required', '--set-ui-upgrade-lock', '--root', site.root, '--database', url]);
      expect(report.stderr).toBe('');
      expect([2, 3]).toContain(report.code);
      const pending = await cli(['upgrade', '--is-pending', '--non-interactive', '--root', site.root, '--database', url]);
      expect(pending.code).toBe(2);
    } finally {
      await site.cleanup();
    }
  });
});

describe('an unsupported database URL (item 14)', () => {
  const cases: readonly { readonly url: string; readonly secret: string; readonly shown: string }[] = [
    { url: 'mysql://root:s3cret-pw@db.internal:3306/lms', secret: 's3cret-pw', shown: 'mysql://root:***@db.internal:3306/lms' },
    // An unencoded "@" inside the password must not leave its tail behind.
    { url: 'mysql://root:p@ss-w0rd@db.internal/lms', secret: 'ss-w0rd', shown: 'mysql://root:***@db.internal/lms' },
    { url: 'postgress://admin:hunter2-x@db/lms', secret: 'hunter2-x', shown: 'postgress://admin:***@db/lms' },
    { url: 'mysql://db.internal/lms?user=root&password=t0psecret', secret: 't0psecret', shown: 'password=***' },
  ];

  for (const { url, secret, shown } of cases) {
    it(`${shown} is echoed without its password, as --database, environment variable and JSON`, async () => {
      const viaOption = await cli(['status', '--root', scratch, '--database', url]);
      const viaEnv = await cli(['upgrade', '--is-pending', '--root', scratch], { env: { OUTAGELESS_DATABASE_URL: url } });
      const viaJson = await cli(['status', '--json', '--root', scratch, '--database', url]);
      for (const result of [viaOption, viaEnv, viaJson]) {
        expect(result.code).toBe(1);
        expect(result.stderr).toContain('OUTAGELESS_ERR_DATABASE_URL');
        expect(result.stderr).toContain(shown);
        expect(result.stderr + result.stdout).not.toContain(secret);
        expectNoCrash(result.stderr);
      }
    });
  }
});

describe('a pglite:// path that is not a directory (item 16)', () => {
  it('a regular file, a file in the parent path, and a file at <root>/.outageless are coded errors', async () => {
    const file = join(scratch, 'not-a-dir');
    await writeFile(file, 'some file\n');
    const root = await mkdtemp(join(scratch, 'root-'));
    await writeFile(join(root, '.outageless'), 'a file where the embedded database would go\n');
    const runs = [
      { args: ['status', '--root', scratch, '--database', `pglite://${file}`], path: file },
      { args: ['upgrade', '--is-pending', '--root', scratch, '--database', `pglite://${join(file, 'db')}`], path: join(file, 'db') },
      { args: ['status', '--root', root], path: join(root, '.outageless', 'db') },
    ];
    for (const { args, path } of runs) {
      const result = await cli(args);
      expect(result.stderr).toContain('OUTAGELESS_ERR_EMBEDDED_PATH');
      expect(result.stderr).toContain(path);
      expect(result.stderr).toContain('fix:');
      expect(result.code).toBe(1);
      expectNoCrash(result.stderr);
    }
    // Nothing was created beside the file (no claim left behind).
    expect(existsSync(`${file}.lock`)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Item 15: a failed step outside a transaction
// ---------------------------------------------------------------------------------------------

const V1 = 2026010100;
const V2 = 2026010200;

/** A core-only site: one table, and release 2's step `body` (which inserts, then throws). */
async function coreSite(): Promise<SiteDir> {
  const site = await createSiteDir();
  await site.write('core/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'core', version: ${V1}, release: '1.0', maturity: 'stable', pluginTypes: [] });
`);
  await site.write('core/db/schema.ts', `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: { core_note: { columns: { id: { type: 'bigint', autoIncrement: true }, body: { type: 'text' } }, primaryKey: ['id'] } },
});
`);
  await site.write('core/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [] });
`);
  return site;
}

async function deployFailingStep(site: SiteDir, options: string): Promise<void> {
  await site.edit('core/version.ts', (text) => text.replace(String(V1), String(V2)));
  await site.write('core/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({
  steps: [
    {
      version: ${V2},
      id: 'note_backfill',
      ${options}
      async run({ db }) {
        await db.insertInto('core_note').values({ body: 'written before the failure' }).execute();
        throw new Error('the backfill tripped on bad data');
      },
    },
  ],
});
`);
}

type Query = (text: string) => Promise<Record<string, unknown>[]>;

interface Target {
  readonly url: string;
  query(text: string): Promise<Record<string, unknown>[]>;
  cleanup(): Promise<void>;
}

async function pgliteTarget(dir: string): Promise<Target> {
  return {
    url: `pglite://${dir}`,
    async query(text) {
      const db = await PGlite.create(dir);
      try {
        return (await db.query<Record<string, unknown>>(text)).rows;
      } finally {
        await db.close();
      }
    },
    cleanup: async () => {},
  };
}

async function postgresTarget(): Promise<Target> {
  const database = await createScratchDatabase('cli_step_failed');
  const query: Query = async (text) => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return (await client.query<Record<string, unknown>>(text)).rows;
    } finally {
      await client.end();
    }
  };
  return { url: database.url, query, cleanup: () => database.drop() };
}

async function expectStepReport(kind: 'pglite' | 'postgres', options: string, mode: readonly string[], rolledBack: boolean): Promise<void> {
  const site = await coreSite();
  const target = kind === 'pglite' ? await pgliteTarget(join(site.root, 'db')) : await postgresTarget();
  try {
    const run = (args: readonly string[]) => cli(['upgrade', '--non-interactive', ...args, '--root', site.root, '--database', target.url]);
    expect((await run([])).code).toBe(0);
    await deployFailingStep(site, options);

    const failed = await run(mode);
    expect(failed.stderr).toContain('OUTAGELESS_ERR_STEP_FAILED');
    expect(failed.stderr).toContain('step: note_backfill');
    expect(failed.stderr).toContain('the backfill tripped on bad data');
    expect(failed.code).toBe(1);
    expectNoCrash(failed.stderr);

    const rows = await target.query('select body from core_note');
    const failures = await target.query(`select step_id from outageless_upgrade_log where status = 'failed'`);
    expect(failures).toEqual([{ step_id: 'note_backfill' }]);
    if (rolledBack) {
      expect(failed.stderr).toContain('failed and was rolled back');
      expect(rows).toEqual([]);
    } else {
      // What the message says is what the database shows: the insert before the throw stayed.
      expect(rows).toEqual([{ body: 'written before the failure' }]);
      expect(failed.stderr).not.toContain('rolled back:');
      expect(failed.stderr).toContain('not rolled back');
      expect(failed.stderr).toContain('reruns from the start');
      expect(failed.stderr).toContain('idempotent');
    }
  } finally {
    await target.cleanup();
    await site.cleanup();
  }
}

describe('a failed step is reported as what happened to it (item 15)', () => {
  it('transaction: false on PGlite: not rolled back, reruns from the start', async () => {
    await expectStepReport('pglite', 'transaction: false,', [], false);
  });

  it('an online step (outage none, --no-maintenance) on PGlite: not rolled back either', async () => {
    await expectStepReport('pglite', "outage: 'none',", ['--no-maintenance'], false);
  });

  it('a transactional step still says it was rolled back, and was', async () => {
    await expectStepReport('pglite', '', [], true);
  });

  it.skipIf(!postgresAvailable)('transaction: false on PostgreSQL: not rolled back, reruns from the start', async () => {
    await expectStepReport('postgres', 'transaction: false,', [], false);
  });
});
