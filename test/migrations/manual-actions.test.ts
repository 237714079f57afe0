/**
 * Acceptance for manual actions (issue 9 part 1) on PostgreSQL, through the real binary:
 * - release 2 of local_tally declares a `phase: 'manual'` action; `upgrade` does not run it but
 *   owes it, so `check` exits 2 and lists it with its command, as do `manual list` and `status`;
 * - `manual run` runs it (its side effect is a row in local_tally_hits) and clears the check;
 * - release 3 promotes the same id to a `main` step: skipped on the site where the operator ran
 *   it, run automatically (and the owed row cleared) on the site where nobody did;
 * - two `manual run` at once: exactly one runs (one row);
 * - bad input (unknown id, already run, malformed name): coded error, exit 1 (64 for usage),
 *   and the database unchanged.
 * Skips (and says so) without PostgreSQL.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';
import { defineUpgrade, defineVersion } from '../../src/component/definitions.ts';
import { validateUpgrade } from '../../src/component/manifest.ts';
import { isOutagelessError } from '../../src/errors.ts';

const R1 = 2026010100;
const R2 = 2026020100;
const R3 = 2026030100;

const version = (v: number) => `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'local_tally', version: ${v}, maturity: 'stable' });
`;
const SCHEMA = `import { defineSchema } from 'outageless';
export default defineSchema({ tables: { local_tally_hits: { columns: { id: { type: 'bigint', autoIncrement: true }, note: { type: 'varchar(50)' } }, primaryKey: ['id'] } } });
`;
const NO_STEPS = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [] });
`;
// The manual action sleeps TALLY_SLEEP_MS while it holds the lock, so two runs overlap.
const MANUAL = `import { setTimeout as sleep } from 'node:timers/promises';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  phase: 'manual', version: ${R2}, id: 'tally_seed',
  description: 'Seed the tally with its first hit', estimate: 'a second',
  async run({ db, log }) {
    log('seeding the tally');
    await sleep(Number(process.env.TALLY_SLEEP_MS ?? 0));
    await db.insertInto('local_tally_hits').values({ note: 'manual' }).execute();
    log('seeded 1 row');
  },
}] });
`;
// Release 3: the same id, promoted to a main step.
const PROMOTED = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  version: ${R3}, id: 'tally_seed', description: 'Seed the tally (automatic from release 3)', outage: 'none',
  async run({ db }) { await db.insertInto('local_tally_hits').values({ note: 'promoted' }).execute(); },
}] });
`;

// Release 3 variant: keeps the manual action and gates a main step on it (`after:`).
const GATED = MANUAL.replace(/\}\] \}\);\n$/, `}, {
  version: ${R3}, id: 'tally_after', description: 'Needs the seed', outage: 'none', after: ['local_tally/tally_seed'],
  async run({ db }) { await db.insertInto('local_tally_hits').values({ note: 'gated' }).execute(); },
}] });
`);

// Release 3 variant: the same id promoted to a background migration over local_tally_hits.
const PROMOTED_BACKGROUND = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  phase: 'background', version: ${R3}, id: 'tally_seed', description: 'Mark every hit (automatic from release 3)',
  table: 'local_tally_hits', key: 'id',
  async batch({ db, from, to }) {
    const result = await db.updateTable('local_tally_hits').set({ note: 'background' }).where('id', '>=', from).where('id', '<=', to).executeTakeFirst();
    return Number(result.numUpdatedRows);
  },
}] });
`;

async function release(site: SiteDir, v: number, upgrade: string): Promise<void> {
  await site.write('plugins/local/tally/version.ts', version(v));
  await site.write('plugins/local/tally/db/schema.ts', SCHEMA);
  await site.write('plugins/local/tally/db/upgrade.ts', upgrade);
}

interface Site {
  readonly site: SiteDir;
  readonly database: ScratchDatabase;
  readonly client: pg.Client;
  run(args: readonly string[], env?: NodeJS.ProcessEnv): ReturnType<typeof cli>;
  notes(): Promise<string[]>;
  /** The rows the commands could change: log, owed actions, hits, versions. */
  snapshot(): Promise<unknown>;
}

async function createSite(label: string): Promise<Site> {
  const database = await createScratchDatabase(label);
  const site = await createSiteDir();
  await writeBareCore(site, 2026010100);
  await release(site, R1, NO_STEPS);
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const run = (args: readonly string[], env?: NodeJS.ProcessEnv) => cli([...args, '--root', site.root, '--database', database.url], { env: { ...env } });
  const installed = await run(['upgrade', '--non-interactive']);
  expect(installed.code, installed.stderr).toBe(0);
  await release(site, R2, MANUAL);
  const upgraded = await run(['upgrade', '--non-interactive']);
  expect(upgraded.code, upgraded.stderr).toBe(0);
  expect(upgraded.stdout + upgraded.stderr).toContain('tally_seed');
  return {
    site, database, client, run,
    notes: async () => (await client.query<{ note: string }>('select note from local_tally_hits order by id')).rows.map((row) => row.note),
    snapshot: async () => ({
      log: (await client.query('select component, step_id, version, status, error from outageless_upgrade_log order by id')).rows,
      owed: (await client.query('select component, step_id, version from outageless_owed_manual order by 1, 2')).rows,
      hits: (await client.query('select * from local_tally_hits order by id')).rows,
      versions: (await client.query('select component, version from outageless_component order by 1')).rows,
    }),
  };
}

describe.skipIf(!postgresAvailable)('manual actions (PostgreSQL)', () => {
  let ran: Site;
  let untouched: Site;
  let background: Site;
  beforeAll(async () => {
    [ran, untouched, background] = await Promise.all([createSite('manual_ran'), createSite('manual_untouched'), createSite('manual_background')]);
  }, 120_000);
  afterAll(async () => {
    for (const s of [ran, untouched, background]) {
      if (!s) continue;
      await s.client.end();
      await s.site.cleanup();
      await s.database.drop();
    }
  });

  it('upgrade owes the action without running it: check exits 2 and lists it with its command', async () => {
    expect(await ran.notes()).toEqual([]);
    const version = await ran.client.query('select version from outageless_component where component = $1', ['local_tally']);
    expect(Number(version.rows[0].version)).toBe(R2);
    const check = await ran.run(['check', '--json']);
    expect(check.code, check.stderr).toBe(2);
    const owed = JSON.parse(check.stdout).owed as { kind: string; name: string; command: string; estimate: string }[];
    expect(owed).toEqual([expect.objectContaining({ kind: 'manual', name: 'local_tally/tally_seed', command: 'outageless manual run local_tally/tally_seed', estimate: 'a second' })]);
    const text = await ran.run(['check']);
    expect(text.code).toBe(2);
    expect(text.stdout).toContain('outageless manual run local_tally/tally_seed');
    const list = await ran.run(['manual', 'list', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).manualActions).toEqual([expect.objectContaining({ component: 'local_tally', id: 'tally_seed', description: 'Seed the tally with its first hit', estimate: 'a second', since: expect.any(String) })]);
    const status = await ran.run(['status']);
    expect(status.stdout).toMatch(/Manual actions owed:\n\s+local_tally\/tally_seed/);
  });

  it('bad input: an unknown id is a coded error, exit 1, database unchanged', async () => {
    const before = await ran.snapshot();
    const unknown = await ran.run(['manual', 'run', 'local_tally/no_such_action']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('OUTAGELESS_ERR_UNKNOWN_MANUAL_ACTION');
    expect(unknown.stderr).toContain('owed: local_tally/tally_seed');
    const malformed = await ran.run(['manual', 'run', 'tally_seed']);
    expect(malformed.code).toBe(64);
    expect(malformed.stderr).toContain('OUTAGELESS_ERR_USAGE');
    expect(await ran.snapshot()).toEqual(before);
  });

  it('two manual run at once: exactly one runs; then check exits 0', async () => {
    const env = { TALLY_SLEEP_MS: '1500' };
    const [a, b] = await Promise.all([ran.run(['manual', 'run', 'local_tally/tally_seed'], env), ran.run(['manual', 'run', 'local_tally/tally_seed'], env)]);
    const codes = [a.code, b.code].sort();
    const winner = a.code === 0 ? a : b;
    const loser = a.code === 0 ? b : a;
    expect(codes[0], a.stderr + b.stderr).toBe(0);
    expect(codes[1]).not.toBe(0);
    // Locked (4) while the other holds the lock, or already run (1) if it had finished.
    expect(loser.stderr).toMatch(/OUTAGELESS_ERR_UPGRADE_LOCKED|OUTAGELESS_ERR_MANUAL_ACTION_ALREADY_RUN/);
    expect(winner.stdout).toContain('seeding the tally');
    expect(winner.stdout).toContain('seeded 1 row');
    expect(await ran.notes()).toEqual(['manual']);
    const log = await ran.client.query("select status from outageless_upgrade_log where step_id = 'tally_seed'");
    expect(log.rows).toEqual([{ status: 'applied' }]);
    const check = await ran.run(['check', '--json']);
    expect(check.code, check.stdout).toBe(0);
    expect(JSON.parse(check.stdout)).toEqual({ ok: true, owed: [] });
  }, 60_000);

  it('bad input: running it again is a coded error, exit 1, database unchanged', async () => {
    const before = await ran.snapshot();
    const again = await ran.run(['manual', 'run', 'local_tally/tally_seed', '--json']);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout).error.code).toBe('OUTAGELESS_ERR_MANUAL_ACTION_ALREADY_RUN');
    expect(await ran.snapshot()).toEqual(before);
  });

  it('a finalization gate on an owed manual action refuses the upgrade and names `manual run`, database unchanged', async () => {
    await release(untouched.site, R3, GATED);
    const before = await untouched.snapshot();
    const refused = await untouched.run(['upgrade', '--non-interactive']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_UNFINISHED_PREREQUISITE');
    expect(refused.stderr).toContain('local_tally/tally_after needs local_tally/tally_seed: an owed manual action, not run yet');
    expect(refused.stderr).toContain('outageless manual run local_tally/tally_seed');
    expect(await untouched.snapshot()).toEqual(before);
  });

  it('promotion: the next release carries the id as a main step: skipped where it was run, run where it was not', async () => {
    for (const s of [ran, untouched]) await release(s.site, R3, PROMOTED);
    const [skipped, automatic] = await Promise.all([ran.run(['upgrade', '--non-interactive']), untouched.run(['upgrade', '--non-interactive'])]);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(automatic.code, automatic.stderr).toBe(0);
    // Where the operator ran it: not again (still the one manual row), logged as skipped.
    expect(await ran.notes()).toEqual(['manual']);
    const ranLog = await ran.client.query("select status, version from outageless_upgrade_log where step_id = 'tally_seed' order by id");
    expect(ranLog.rows.map((row) => [row.status, Number(row.version)])).toEqual([['applied', R2], ['skipped', R3]]);
    // Where nobody did: it ran automatically and is no longer owed.
    expect(await untouched.notes()).toEqual(['promoted']);
    const owed = await untouched.client.query('select * from outageless_owed_manual');
    expect(owed.rows).toEqual([]);
    for (const s of [ran, untouched]) {
      const check = await s.run(['check']);
      expect(check.code, check.stdout).toBe(0);
      expect(check.stdout).toContain('Nothing is owed.');
    }
  }, 60_000);

  it('promotion to a background step: queued in place of the owed action, and check lists it with its command', async () => {
    await background.client.query("insert into local_tally_hits (note) values ('old'), ('old')");
    await release(background.site, R3, PROMOTED_BACKGROUND);
    const upgraded = await background.run(['upgrade', '--non-interactive']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect((await background.client.query('select * from outageless_owed_manual')).rows).toEqual([]);
    const queued = await background.client.query("select state from outageless_background_migration where component = 'local_tally' and id = 'tally_seed'");
    // No front or worker runs here: it stays queued until `background finish`.
    expect(queued.rows).toEqual([{ state: 'queued' }]);
    const check = await background.run(['check', '--json']);
    expect(check.code).toBe(2);
    expect(JSON.parse(check.stdout).owed).toEqual([expect.objectContaining({ kind: 'background', name: 'local_tally/tally_seed', command: 'outageless background finish local_tally/tally_seed' })]);
    const finished = await background.run(['background', 'finish', 'local_tally/tally_seed']);
    expect(finished.code, finished.stderr).toBe(0);
    expect(await background.notes()).toEqual(['background', 'background']);
    const after = await background.run(['check']);
    expect(after.code, after.stdout).toBe(0);
  }, 60_000);
});

describe('manual action definitions', () => {
  const manifest = defineVersion({ component: 'local_tally', version: R2 });
  const file = 'plugins/local/tally/db/upgrade.ts';
  const refusal = (step: Record<string, unknown>) => {
    try {
      validateUpgrade(file, defineUpgrade({ steps: [step as never] }), manifest);
    } catch (error) {
      if (isOutagelessError(error)) return `${error.code} ${error.message}`;
      throw error;
    }
    return 'accepted';
  };
  const valid = { phase: 'manual', version: R2, id: 'tally_seed', description: 'Seed', estimate: 'a second', run: () => {} };

  it('accepts the shape and refuses a missing estimate, a non-string estimate and keys of other step kinds', () => {
    expect(refusal(valid)).toBe('accepted');
    const { estimate: _estimate, ...withoutEstimate } = valid;
    expect(refusal(withoutEstimate)).toMatch(/^OUTAGELESS_ERR_MANIFEST_INVALID .*steps\[0\]\.estimate/);
    expect(refusal({ ...valid, estimate: 5 })).toMatch(/^OUTAGELESS_ERR_MANIFEST_INVALID .*estimate/);
    expect(refusal({ ...valid, outage: 'none' })).toMatch(/^OUTAGELESS_ERR_MANIFEST_INVALID .*unknown key "outage"/);
    expect(refusal({ ...valid, after: ['local_tally/x'] })).toMatch(/^OUTAGELESS_ERR_MANIFEST_INVALID .*unknown key "after"/);
  });
});

// A long manual action: the shape of a background migration, queued by `manual run`.
const BATCHED = `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [{
  phase: 'manual', version: ${R2}, id: 'tally_mark', description: 'Mark every hit (long: batched)', estimate: 'about an hour on a big site',
  table: 'local_tally_hits', key: 'id', batchSize: { min: 2, initial: 2, max: 2 },
  async batch({ db, from, to }) {
    const result = await db.updateTable('local_tally_hits').set({ note: 'batched' }).where('id', '>=', from).where('id', '<=', to).executeTakeFirst();
    return Number(result.numUpdatedRows);
  },
}] });
`;

describe.skipIf(!postgresAvailable)('a batched (long) manual action (PostgreSQL)', () => {
  it('manual run queues it as a background migration; check and background status track it until it is finished', async () => {
    const database = await createScratchDatabase('manual_batched');
    const site = await createSiteDir();
    const client = new pg.Client({ connectionString: database.url });
    try {
      await writeBareCore(site, 2026010100);
      await release(site, R1, NO_STEPS);
      const run = (args: readonly string[]) => cli([...args, '--root', site.root, '--database', database.url]);
      expect((await run(['upgrade', '--non-interactive'])).code).toBe(0);
      await client.connect();
      await client.query("insert into local_tally_hits (note) select 'old' from generate_series(1, 7)");
      await release(site, R2, BATCHED);
      const upgraded = await run(['upgrade', '--non-interactive']);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      // Owed, not run, and nothing queued yet.
      expect((await run(['check'])).code).toBe(2);
      expect((await client.query('select * from outageless_background_migration')).rows).toEqual([]);

      const queued = await run(['manual', 'run', 'local_tally/tally_mark']);
      expect(queued.code, queued.stderr).toBe(0);
      expect(queued.stdout).toContain('queued as background migration local_tally/tally_mark');
      expect((await client.query('select * from outageless_owed_manual')).rows).toEqual([]);
      const check = await run(['check', '--json']);
      expect(check.code).toBe(2);
      expect(JSON.parse(check.stdout).owed).toEqual([expect.objectContaining({ kind: 'background', name: 'local_tally/tally_mark', command: 'outageless background finish local_tally/tally_mark' })]);
      const status = await run(['background', 'status', '--json']);
      expect(JSON.parse(status.stdout).backgroundMigrations).toEqual([expect.objectContaining({ component: 'local_tally', id: 'tally_mark', state: 'queued' })]);
      // Running it again is refused: it is no longer owed.
      expect((await run(['manual', 'run', 'local_tally/tally_mark'])).code).toBe(1);

      const finished = await run(['background', 'finish', 'local_tally/tally_mark']);
      expect(finished.code, finished.stderr).toBe(0);
      expect((await client.query("select count(*)::int as n from local_tally_hits where note = 'batched'")).rows).toEqual([{ n: 7 }]);
      expect((await run(['check'])).code).toBe(0);
    } finally {
      await client.end().catch(() => {});
      await site.cleanup();
      await database.drop();
    }
  }, 90_000);
});
