/**
 * The step harness itself (`outageless/testing`): that it installs release N-1 through the
 * runner, runs steps twice, and FAILS, with a coded error naming the component, step and
 * what differed, on a step that is not idempotent and on a step that disagrees with
 * db/schema.ts.
 *
 * The fixture is a site written into temp app dirs: one `local_<case>` component per case,
 * each owning a table `local_<case>_paint (id, name)` in release N-1 and bringing its own
 * step (good or broken) in release N. Components are independent, so one harness (one
 * PGlite boot, the slow part) serves every PGlite case.
 */
import pg from 'pg';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStepHarness, isOutagelessError, testingErrors, type StepHarness } from '../../src/testing/index.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { createSiteDir, type SiteDir } from '../support/sites.ts';

const OLD = 2026010100;
const NEW = 2026020100;

interface Case {
  /** Columns release N declares on the table, after `id` and `name`. */
  readonly columns?: string;
  readonly indexes?: string;
  /** The steps of release N; `T` is the table's name. */
  readonly steps: (T: string) => string;
}

const step = (id: string, body: string, options: { extra?: string; version?: number } = {}) => `{
  version: ${options.version ?? NEW}, id: '${id}', outage: 'none', ${options.extra ?? ''}
  async run({ db, schema, log }) { ${body} },
},`;
const COLOR = `color: { type: 'text', nullable: true },`;
const addColor = (T: string) => `await schema.addColumn('${T}', 'color', { type: 'text', nullable: true });`;

const CASES = {
  good: {
    columns: COLOR,
    steps: (T) => step('paint_add_color', `${addColor(T)}
      const result = await db.updateTable('${T}').set({ color: 'red' }).where('color', 'is', null).executeTakeFirst();
      log('painted ' + result.numUpdatedRows);`),
  },
  colour: { columns: COLOR, steps: (T) => step('paint_add_colour', `await schema.addColumn('${T}', 'colour', { type: 'text', nullable: true });`) },
  inserts: { steps: (T) => step('paint_seed_defaults', `await db.insertInto('${T}').values({ name: 'primer' }).execute();`) },
  once: { steps: (T) => step('paint_seed_defaults', `await db.insertInto('${T}').values({ name: 'primer' }).execute();`) },
  shout: { steps: (T) => step('paint_shout', `await sql\`update ${T} set name = name || '!'\`.execute(db);`) },
  raw: { columns: COLOR, steps: (T) => step('paint_add_color_raw', `await sql\`alter table ${T} add column color text\`.execute(db);`) },
  drift: {
    columns: COLOR,
    steps: (T) => step('paint_add_color_drifting', `
      if (await schema.hasColumn('${T}', 'color')) await schema.addColumn('${T}', 'color2', { type: 'text', nullable: true });
      else ${addColor(T)}`),
  },
  multi: {
    columns: COLOR,
    // Several steps lead to one release: their versions stay at or below the component's.
    steps: (T) => [
      step('paint_add_color', addColor(T), { version: OLD + 1 }),
      step('paint_fill', `await db.updateTable('${T}').set({ color: 'blue' }).where('color', 'is', null).execute();`, { version: OLD + 2 }),
      step('paint_broken', `await db.insertInto('no_such_table').values({ a: 1 }).execute();`),
    ].join(''),
  },
  concurrent: {
    columns: COLOR,
    steps: (T) => step('paint_add_color_indexed', `${addColor(T)}
      await schema.addIndex('${T}', { columns: ['color'] });
      log('in a transaction: ' + db.isTransaction);`, { extra: 'transaction: false,' }),
  },
} satisfies Record<string, Case>;
type CaseName = keyof typeof CASES;

const table = (name: CaseName) => `local_${name}_paint`;

const versionFile = (component: string, version: number) => `import { defineVersion } from 'outageless';
export default defineVersion({ component: '${component}', version: ${version} });
`;
const schemaFile = (T: string, columns: string, indexes: string) => `import { defineSchema } from 'outageless';
export default defineSchema({
  tables: {
    ${T}: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        name: { type: 'varchar(100)' },
        ${columns}
      },
      primaryKey: ['id'],
      ${indexes}
    },
  },
});
`;
const upgradeFile = (steps: string) => `import { sql } from 'kysely';
import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [${steps}] });
`;

const sites: SiteDir[] = [];

/** Release N-1 and release N of a site with the given cases (core is unchanged between them). */
async function fixture(names: readonly CaseName[]): Promise<{ from: string; to: string }> {
  const [from, to] = [await createSiteDir(), await createSiteDir()];
  sites.push(from, to);
  for (const site of [from, to]) await site.write('core/version.ts', versionFile('core', OLD));
  for (const name of names) {
    const c: Case = CASES[name];
    const dir = `plugins/local/${name}`;
    await from.write(`${dir}/version.ts`, versionFile(`local_${name}`, OLD));
    await from.write(`${dir}/db/schema.ts`, schemaFile(table(name), '', ''));
    await from.write(`${dir}/db/upgrade.ts`, upgradeFile(''));
    await to.write(`${dir}/version.ts`, versionFile(`local_${name}`, NEW));
    await to.write(`${dir}/db/schema.ts`, schemaFile(table(name), c.columns ?? '', c.indexes ?? ''));
    await to.write(`${dir}/db/upgrade.ts`, upgradeFile(c.steps(table(name))));
  }
  return { from: from.root, to: to.root };
}

/** The coded error a promise rejects with (and fails the test when it resolves). */
async function failure(promise: Promise<unknown>): Promise<Error & { code?: string; location?: Record<string, string> }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the harness to fail, and it passed');
}

afterAll(async () => {
  await Promise.all(sites.map((site) => site.cleanup()));
});

describe('step harness on PGlite', () => {
  let harness: StepHarness;
  beforeAll(async () => {
    const { from, to } = await fixture(Object.keys(CASES) as CaseName[]);
    harness = await createStepHarness({ from, to });
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('installs release N-1 through the runner and lists the pending steps of release N', async () => {
    // The runner's own record of the install: release N-1, as an operator's site has it.
    const installed = await harness.db.selectFrom('outageless_component').select(['component', 'version']).where('component', 'in', ['core', 'local_good']).orderBy('component').execute();
    expect(installed).toEqual([{ component: 'core', version: OLD }, { component: 'local_good', version: OLD }]);
    expect(harness.kind).toBe('pglite');
    expect(harness.pending('local_good')).toEqual([
      { component: 'local_good', id: 'paint_add_color', version: NEW, outage: 'none', phase: 'main', transaction: true, status: 'pending' },
    ]);
    expect(harness.pending('local_multi').map((s) => `${s.id} ${s.version}`)).toEqual([`paint_add_color ${OLD + 1}`, `paint_fill ${OLD + 2}`, `paint_broken ${NEW}`]);
  });

  it('says which steps have not run when the schema is checked too early', async () => {
    const error = await failure(harness.assertSchemaMatches('local_multi'));
    expect(error.code).toBe(testingErrors.schemaMismatch.code);
    expect(error.message).toContain('local_multi: table local_multi_paint: column color missing (expected text NULL)');
    expect(error.message).toContain('(pending steps not run yet: local_multi paint_add_color, local_multi paint_fill, local_multi paint_broken)');
  });

  it('seeds, runs a step twice, and asserts rows and schema', async () => {
    const seeded = await harness.seed(table('good'), [{ name: 'door' }, { name: 'wall' }]);
    expect(seeded.map((row) => row.name)).toEqual(['door', 'wall']);
    await harness.runStep('local_good', 'paint_add_color');

    await harness.assertRows(table('good'), [{ name: 'door', color: 'red' }, { name: 'wall', color: 'red' }]);
    await harness.assertSchemaMatches('local_good');
    // Two runs: the first painted both rows, the second found nothing left to do.
    expect(harness.logs.filter((entry) => entry.component === 'local_good')).toEqual([
      { component: 'local_good', step: 'paint_add_color', message: 'painted 2' },
      { component: 'local_good', step: 'paint_add_color', message: 'painted 0' },
    ]);
    expect(harness.pending('local_good').map((s) => s.status)).toEqual(['ran']);
    expect(await harness.runPending('local_good')).toEqual([]);
    // The harness leaves the runner's state as release N-1 wrote it.
    const row = await harness.db.selectFrom('outageless_component').select('version').where('component', '=', 'local_good').executeTakeFirstOrThrow();
    expect(row.version).toBe(OLD);
  });

  it('fails on a step that adds colour while db/schema.ts says color', async () => {
    expect(await harness.runPending('local_colour')).toEqual([{ kind: 'step', component: 'local_colour', step: 'paint_add_colour', version: NEW }]);
    const error = await failure(harness.assertSchemaMatches('local_colour'));
    expect(error.code).toBe(testingErrors.schemaMismatch.code);
    expect(error.location).toMatchObject({ component: 'local_colour', file: 'plugins/local/colour/db/schema.ts' });
    expect(error.message).toBe([
      'local_colour: the schema after the steps differs from plugins/local/colour/db/schema.ts in 2 place(s):',
      '  - local_colour: table local_colour_paint: column color missing (expected text NULL)',
      '  - local_colour: table local_colour_paint: column colour is not declared (text NULL)',
    ].join('\n'));
  });

  it('fails on a step whose second run inserts rows again', async () => {
    await harness.seed(table('inserts'), [{ name: 'door' }]);
    const error = await failure(harness.runPending('local_inserts'));
    expect(error.code).toBe(testingErrors.notIdempotent.code);
    expect(error.location).toMatchObject({ component: 'local_inserts', step: 'paint_seed_defaults', file: 'plugins/local/inserts/db/upgrade.ts' });
    expect(error.message).toBe(
      'local_inserts step paint_seed_defaults (plugins/local/inserts/db/upgrade.ts) is not idempotent: its second run\n' +
        '  - table local_inserts_paint: 2 row(s) before, 3 after',
    );
  });

  it('runs a step once when asked, so the same step passes with twice: false', async () => {
    await harness.runStep('local_once', 'paint_seed_defaults', { twice: false });
    await harness.assertRows(table('once'), [{ name: 'primer' }]);
  });

  it('fails on a step whose second run rewrites rows without changing their count', async () => {
    await harness.seed(table('shout'), [{ name: 'door' }]);
    const error = await failure(harness.runStep('local_shout', 'paint_shout'));
    expect(error.code).toBe(testingErrors.notIdempotent.code);
    expect(error.message).toContain('its second run\n  - table local_shout_paint: changed the contents of its 1 row(s)');
  });

  it('fails on a step whose second run throws (raw DDL without a guard)', async () => {
    const error = await failure(harness.runPending('local_raw'));
    expect(error.code).toBe(testingErrors.notIdempotent.code);
    expect(error.message).toMatch(/^local_raw step paint_add_color_raw .* is not idempotent: its second run\n {2}- threw: .*"color".*already exists/);
  });

  it('fails on a step whose second run changes the schema without throwing', async () => {
    const error = await failure(harness.runPending('local_drift'));
    expect(error.code).toBe(testingErrors.notIdempotent.code);
    expect(error.message).toContain('its second run\n  - added column local_drift_paint.color2 (text NULL)');
  });

  it('refuses steps out of order, unknown ids and components with nothing pending; reports bad rows and a failing step', async () => {
    const unknown = await failure(harness.runStep('local_multi', 'paint_nope'));
    expect(unknown.code).toBe(testingErrors.notPending.code);
    expect(unknown.message).toBe(`local_multi step paint_nope: no pending step has this id (installed version ${OLD}; pending: paint_add_color, paint_fill, paint_broken)`);

    const early = await failure(harness.runStep('local_multi', 'paint_fill'));
    expect(early.code).toBe(testingErrors.notPending.code);
    expect(early.message).toContain("runs after paint_add_color, which has not run yet: run it first, or use runPending('local_multi')");

    const unchanged = await failure(harness.runPending('core'));
    expect(unchanged.code).toBe(testingErrors.notPending.code);
    expect(unchanged.message).toContain(`core: nothing is pending: release N has version ${OLD} and release N-1 installed ${OLD}`);
    expect(isOutagelessError(await failure(harness.runPending('mod_nothere')), 'OUTAGELESS_ERR_UNKNOWN_COMPONENT')).toBe(true);

    await harness.seed(table('multi'), [{ name: 'door' }]);
    await harness.runStep('local_multi', 'paint_add_color');
    await harness.runStep('local_multi', 'paint_fill');
    const rows = await failure(harness.assertRows(table('multi'), [{ name: 'door', color: 'red' }, { name: 'wall' }]));
    expect(rows.code).toBe(testingErrors.rowsMismatch.code);
    expect(rows.message).toContain('table local_multi_paint does not hold the expected rows:\n  - 1 row(s), expected 2');
    expect(rows.message).toContain("\n  - row 1: color is 'blue', expected 'red'");

    const broken = await failure(harness.runPending('local_multi'));
    expect(broken.code).toBe(testingErrors.stepFailed.code);
    expect(broken.location).toMatchObject({ component: 'local_multi', step: 'paint_broken' });
    expect(broken.message).toMatch(/^local_multi step paint_broken \(plugins\/local\/multi\/db\/upgrade.ts\) failed: .*no_such_table/);
  });

  it('runs a transaction: false step outside a transaction, as the runner does', async () => {
    await harness.runPending('local_concurrent');
    expect(harness.logs.filter((entry) => entry.component === 'local_concurrent').map((entry) => entry.message)).toEqual([
      'in a transaction: false',
      'in a transaction: false',
    ]);
    // db/schema.ts does not declare the index the step builds: the check names it.
    const error = await failure(harness.assertSchemaMatches('local_concurrent'));
    expect(error.message).toContain('local_concurrent: table local_concurrent_paint: index local_concurrent_paint_color_ix is not declared ((color))');
  });

  it('refuses an embedded directory: it installs only into a scratch database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outageless-harness-'));
    try {
      const { from, to } = await fixture(['good']);
      const error = await failure(createStepHarness({ from, to, database: `pglite://${dir}` }));
      expect(error.code).toBe(testingErrors.databaseNotScratch.code);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!postgresAvailable)('step harness on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  const open: StepHarness[] = [];
  beforeAll(async () => {
    scratch = await createScratchDatabase('step_harness');
  });
  afterAll(async () => {
    await Promise.all(open.map((harness) => harness.close()));
    await scratch?.drop();
  });

  async function query<T>(text: string): Promise<T[]> {
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      return (await client.query(text)).rows as T[];
    } finally {
      await client.end();
    }
  }
  const harnessSchemas = async () =>
    (await query<{ name: string }>("select nspname as name from pg_namespace where nspname like 'outageless_test_%' order by 1")).map((row) => row.name);

  it('gives each harness a schema of its own, side by side in one database, and drops it on close', async () => {
    const [good, colour] = await Promise.all([fixture(['good']), fixture(['colour'])]);
    const [a, b] = await Promise.all([
      createStepHarness({ ...good, database: scratch.url }),
      createStepHarness({ ...colour, database: scratch.url }),
    ]);
    open.push(a, b);
    expect(a.kind).toBe('postgres');
    expect(await harnessSchemas()).toEqual([a.schema, b.schema].sort());

    await a.seed(table('good'), [{ name: 'door' }]);
    await a.runPending();
    await b.runPending();
    await a.assertRows(table('good'), [{ name: 'door', color: 'red' }]);
    await a.assertSchemaMatches();
    expect((await failure(b.assertSchemaMatches())).code).toBe(testingErrors.schemaMismatch.code);
    // Every table is in the harnesses' schemas; none landed in public.
    expect(await query("select tablename from pg_tables where schemaname = 'public'")).toEqual([]);

    await a.close();
    await b.close();
    expect(await harnessSchemas()).toEqual([]);
  });

  it('fails on a non-idempotent step on PostgreSQL too', async () => {
    const harness = await createStepHarness({ ...(await fixture(['inserts'])), database: scratch.url });
    open.push(harness);
    const error = await failure(harness.runPending('local_inserts'));
    expect(error.code).toBe(testingErrors.notIdempotent.code);
    expect(error.message).toContain('table local_inserts_paint: 1 row(s) before, 2 after');
  });
});
