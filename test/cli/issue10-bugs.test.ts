/**
 * Issue 10, "Bugs to fix": the ones whose point is a message or a plan, tested in-process.
 * Plans are built from the example releases with the installed state taken from release 1's
 * own code (what an install of it records), so most cases need no database; the install-log
 * and upgrade-refusal cases run on a PostgreSQL scratch database (skipped without a server).
 * The process behaviour of `serve` is in serve-failure.test.ts.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheErrors } from '../../src/caches/errors.ts';
import { formatPlan, planSummary, planToJson } from '../../src/cli/format.ts';
import { discoverSite, type SiteCode } from '../../src/component/discover.ts';
import { validateUpgrade, validateVersion, versionProblem } from '../../src/component/manifest.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { errors, isOutagelessError, type OutagelessError } from '../../src/errors.ts';
import { readPlan } from '../../src/plan/read.ts';
import { buildPlan, type Plan } from '../../src/plan/plan.ts';
import type { InstalledComponent } from '../../src/state/installed.ts';
import { describeUpgradeEvent } from '../../src/upgrade/describe-event.ts';
import { runUpgrade } from '../../src/upgrade/run.ts';
import { checkOperatorAction } from '../../src/runtime/operator-actions.ts';
import { createScratchDatabase, postgresAvailable, TEST_DATABASE_URL, type ScratchDatabase } from '../support/databases.ts';
import { createSiteDir, RELEASES, writeBareCore, type SiteDir } from '../support/sites.ts';

const QUIZ_UPGRADE = 'plugins/mod/quiz/db/upgrade.ts';

/** What an install of `code` records: each component at its version with its db/ hashes. */
function installedFrom(code: SiteCode): Map<string, InstalledComponent> {
  return new Map([...code.components.values()].map((component) => [component.name, {
    component: component.name, version: component.manifest.version, release: component.manifest.release ?? null,
    codeIncrement: component.manifest.codeIncrement ?? null, definitionsHash: component.definitions.hash,
    definitions: component.definitions.files, updatedAt: new Date(),
  }]));
}

async function rejection(work: Promise<unknown>): Promise<OutagelessError> {
  const error = await work.then(() => undefined, (caught: unknown) => caught);
  if (!isOutagelessError(error)) throw new Error(`expected an outageless error, got ${String(error)}`);
  return error;
}

function thrown(run: () => unknown): OutagelessError {
  try {
    run();
  } catch (error) {
    if (isOutagelessError(error)) return error;
    throw error;
  }
  throw new Error('expected a throw');
}

/** The rows of a formatted plan: component lines (two-space indent, no "-"), per section. */
function sections(text: string): { pending: string[]; notPending: string[]; heading: string | undefined } {
  const lines = text.split('\n');
  const rows = (from: string[]) => from.filter((line) => /^ {2}\S/.test(line)).map((line) => line.trim().split(/\s+/)[0]!);
  const split = lines.findIndex((line) => line.startsWith('Not pending'));
  return {
    pending: rows(split === -1 ? lines.slice(1) : lines.slice(1, split)),
    notPending: split === -1 ? [] : rows(lines.slice(split + 1)),
    heading: split === -1 ? undefined : lines[split],
  };
}

describe('fresh-install plan header (bug: "maintenance IS required" above rows that all say none)', () => {
  let plan: Plan;
  beforeAll(async () => {
    plan = await buildPlan({ code: await discoverSite(join(RELEASES, '1')), installed: undefined, appliedSteps: new Map() });
  });

  it('the text header gives the reason: a fresh install runs in maintenance mode', () => {
    const text = formatPlan(plan);
    const header = text.split('\n')[0]!;
    expect(header).toBe(`${plan.pending.length} component(s) pending; outage class site; maintenance IS required: a fresh install runs in maintenance mode (each row's class none is that component's own install, which is additive).`);
    // The rows still say none: the reason for site is in the header, not contradicted by them.
    expect(plan.pending.every((item) => item.outage === 'none')).toBe(true);
  });

  it('--json carries the same summary and the reason in maintenanceReasons', () => {
    const json = planToJson(plan);
    expect(json.summary).toBe(planSummary(plan));
    expect(json.summary).toContain('a fresh install runs in maintenance mode');
    expect(json).toMatchObject({ siteInstalled: false, outage: 'site', maintenanceRequired: true, pendingCount: 10 });
    expect(json.maintenanceReasons).toEqual(['site: not installed yet: a fresh install runs in maintenance mode']);
  });

  it('an installed site needing maintenance gives no fresh-install reason', () => {
    const installed = { ...plan, siteInstalled: true } as Plan;
    expect(planSummary(installed)).toMatch(/maintenance IS required\.$/);
  });
});

describe('release 1 -> 2 of the example: the count and the rows agree (bug: "6 pending" above 7 rows)', () => {
  let plan: Plan;
  beforeAll(async () => {
    const installed = installedFrom(await discoverSite(join(RELEASES, '1')));
    plan = await buildPlan({ code: await discoverSite(join(RELEASES, '2')), installed, appliedSteps: new Map() });
  });

  it('the header counts exactly the rows under it; mod_quiz (a code increment only) is listed apart, with its reason', () => {
    const text = formatPlan(plan);
    const { pending, notPending, heading } = sections(text);
    expect(text.split('\n')[0]).toBe('6 component(s) pending; outage class none; maintenance is NOT required.');
    expect(pending).toEqual(['core', 'theme_clean', 'auth_manual', 'format_topics', 'block_news', 'mod_assign']);
    expect(heading).toBe('Not pending (1):');
    expect(notPending).toEqual(['mod_quiz']);
    expect(text).toContain('code increment (none) -> 1.0.0001: code-only, not an upgrade');
  });

  it('status (every component) lists the up-to-date ones under "Not pending" too, never under the count', () => {
    const { pending, notPending, heading } = sections(formatPlan(plan, { all: true }));
    expect(pending).toHaveLength(6);
    expect(notPending).toHaveLength(plan.items.length - 6);
    expect(heading).toBe(`Not pending (${plan.items.length - 6}):`);
  });

  it('--json: pendingCount matches the components marked pending', () => {
    const json = planToJson(plan) as { pendingCount: number; components: { component: string; pending: boolean }[] };
    expect(json.pendingCount).toBe(6);
    expect(json.components.filter((c) => c.pending).map((c) => c.component)).toEqual(pending(plan));
    expect(json.components.find((c) => c.component === 'mod_quiz')?.pending).toBe(false);
  });
});

function pending(plan: Plan): string[] {
  return plan.pending.map((item) => item.component);
}

describe('version must be YYYYMMDDXX (bug: 2026131500 and 20260201 accepted)', () => {
  it.each([
    [2026020100, undefined],
    [2024022900, undefined], // a leap day
    [2026123199, undefined],
    [2026131500, 'month 13 is not 01-12'],
    [2026001500, 'month 00 is not 01-12'],
    [2026022900, '2026-02 has no day 29'],
    [2026043100, '2026-04 has no day 31'],
    [2026020000, '2026-02 has no day 00'],
    [20260201, '8 digits, not the 10 of YYYYMMDDXX (the date and a two-digit counter): 2026020100, say'],
    [202602010, '9 digits'],
    [20260201000, '11 digits'],
  ])('versionProblem(%s)', (value, problem) => {
    if (problem === undefined) expect(versionProblem(value)).toBeUndefined();
    else expect(versionProblem(value)).toContain(problem);
  });

  it('version.ts: a coded error naming the file and the field, with the version-format fix', () => {
    for (const [value, problem] of [[2026131500, 'month 13'], [20260201, '8 digits']] as const) {
      const error = thrown(() => validateVersion('plugins/local/x/version.ts', { kind: 'version', component: 'local_x', version: value }, 'local_x'));
      expect(error.code).toBe('OUTAGELESS_ERR_MANIFEST_INVALID');
      expect(error.location).toMatchObject({ file: 'plugins/local/x/version.ts', field: 'version', component: 'local_x' });
      expect(error.message).toContain(problem);
      expect(error.hint).toBe('Correct "version" in plugins/local/x/version.ts. Versions are integers in the form YYYYMMDDXX.');
    }
  });

  it('requires, dependencies and step versions are checked the same way', () => {
    const requires = thrown(() => validateVersion('v.ts', { kind: 'version', component: 'local_x', version: 2026020100, requires: 2026023000 }, 'local_x'));
    expect(requires.location.field).toBe('requires');
    const dependency = thrown(() => validateVersion('v.ts', { kind: 'version', component: 'local_x', version: 2026020100, dependencies: { mod_assign: 20260101 } }, 'local_x'));
    expect(dependency.location.field).toBe('dependencies.mod_assign');
    const manifest = validateVersion('v.ts', { kind: 'version', component: 'local_x', version: 2026020100 }, 'local_x');
    const step = thrown(() => validateUpgrade('db/upgrade.ts', { kind: 'upgrade', steps: [{ version: 2026013200, id: 'x', outage: 'none', run() {} }] }, manifest));
    expect(step.location).toMatchObject({ field: 'steps[0].version', file: 'db/upgrade.ts' });
    expect(step.message).toContain('2026-01 has no day 32');
  });

  it('a new component at 2026131500 is refused when the site is read; every example release still reads', async () => {
    const site = await createSiteDir();
    try {
      await writeBareCore(site, 2026010100);
      await site.write('plugins/local/x/version.ts', "import { defineVersion } from 'outageless';\nexport default defineVersion({ component: 'local_x', version: 2026131500 });\n");
      const error = await rejection(discoverSite(site.root));
      expect(error.code).toBe('OUTAGELESS_ERR_MANIFEST_INVALID');
      expect(error.location).toMatchObject({ file: 'plugins/local/x/version.ts', field: 'version' });
    } finally {
      await site.cleanup();
    }
    for (const release of [1, 2, 3, 4, 5, 6, 7, 8]) {
      expect((await discoverSite(join(RELEASES, String(release)))).components.size).toBeGreaterThan(0);
    }
  });
});

describe('db/ files are checked whenever they changed, even without a version bump', () => {
  let site: SiteDir;
  let installed: Map<string, InstalledComponent>;
  const plan = async () => buildPlan({ code: await discoverSite(site.root), installed, appliedSteps: new Map() });
  beforeAll(async () => {
    site = await createSiteDir(1);
    installed = installedFrom(await discoverSite(site.root));
  });
  afterAll(() => site.cleanup());

  it('a step above the version, in a db/upgrade.ts whose version.ts did not move', async () => {
    await site.edit(QUIZ_UPGRADE, (text) => text.replace('steps: [],', "steps: [{ version: 2026030100, id: 'quiz_future', outage: 'none', async run() {} }],"));
    const error = await rejection(plan());
    expect(error.code).toBe('OUTAGELESS_ERR_STEP_ABOVE_VERSION');
    expect(error.location).toMatchObject({ component: 'mod_quiz', step: 'quiz_future', file: QUIZ_UPGRADE });
  });

  it('a syntax error in db/upgrade.ts', async () => {
    await site.write(QUIZ_UPGRADE, "import { defineUpgrade } from 'outageless';\nexport default defineUpgrade({ steps: [ });\n");
    const error = await rejection(plan());
    expect(error.code).toBe('OUTAGELESS_ERR_LOAD_FAILED');
    expect(error.location).toMatchObject({ component: 'mod_quiz', file: QUIZ_UPGRADE });
  });

  it('a bad db/schema.ts', async () => {
    await site.deploy(1);
    await site.edit('plugins/mod/quiz/db/schema.ts', (text) => text.replace(/type: 'text'/, "type: 'blob'"));
    expect((await rejection(plan())).code).toBe('OUTAGELESS_ERR_SCHEMA_INVALID');
  });

  it('a valid change is still only reported as not pending until the bump', async () => {
    await site.deploy(1);
    await site.edit(QUIZ_UPGRADE, (text) => text.replace('steps: [],', "steps: [{ version: 2026010100, id: 'quiz_same_day', outage: 'none', async run() {} }],"));
    const result = await plan();
    expect(result.pending).toHaveLength(0);
    expect(result.items.find((item) => item.component === 'mod_quiz')!.reasons.join('\n')).toContain('without a version bump: not pending');
  });
});

describe('MANIFEST_INVALID fix line (fixed in issue 11; checked here against the issue 10 report)', () => {
  it('a missing version.ts, a missing default export and a non-version field get fixes of their own, not the version format', async () => {
    const site = await createSiteDir();
    try {
      await writeBareCore(site, 2026010100);
      await site.write('plugins/local/x/db/schema.ts', "import { defineSchema } from 'outageless';\nexport default defineSchema({ tables: {} });\n");
      const missing = await rejection(discoverSite(site.root));
      expect(missing.code).toBe('OUTAGELESS_ERR_FILE_MISSING');
      expect(missing.hint).not.toContain('Versions are integers');
      await site.write('plugins/local/x/version.ts', "import { defineVersion } from 'outageless';\nexport const version = defineVersion({ component: 'local_x', version: 2026010100 });\n");
      const noDefault = await rejection(discoverSite(site.root));
      expect(noDefault.code).toBe('OUTAGELESS_ERR_NO_DEFAULT_EXPORT');
      expect(noDefault.hint).not.toContain('Versions are integers');
      await site.write('plugins/local/x/version.ts', "import { defineVersion } from 'outageless';\nexport default defineVersion({ component: 'local_x', version: 2026010100, maturity: 'gold' as never });\n");
      const field = await rejection(discoverSite(site.root));
      expect(field).toMatchObject({ code: 'OUTAGELESS_ERR_MANIFEST_INVALID', hint: 'Correct "maturity" in plugins/local/x/version.ts.' });
    } finally {
      await site.cleanup();
    }
  });
});

describe('fix lines', () => {
  it('a subplugin pause says to pause the parent, not to declare disableable', () => {
    const why = 'assignsubmission_file is a subplugin: it pauses with its parent mod_assign';
    const parent = { name: 'mod_assign', versionFile: 'plugins/mod/assign/version.ts', disableable: true };
    const error = errors.notDisableable('assignsubmission_file', 'plugins/mod/assign/submission/file/version.ts', why, parent);
    expect(error.code).toBe('OUTAGELESS_ERR_NOT_DISABLEABLE');
    expect(error.hint).toBe('Pause its parent instead: `outageless maintenance enable --component mod_assign` pauses mod_assign and its subplugins, assignsubmission_file among them.');
    expect(error.location.field).toBeUndefined();
    // A parent that may not pause either: the declaration goes into the parent's version.ts.
    const undeclared = errors.notDisableable('assignsubmission_file', 'plugins/mod/assign/submission/file/version.ts', why, { ...parent, disableable: false });
    expect(undeclared.hint).toContain('declare maintenance: { disableable: true } in plugins/mod/assign/version.ts, then run `outageless maintenance enable --component mod_assign`');
    expect(errors.notDisableable('core', 'core/version.ts', 'core cannot pause on its own').hint).toContain('`outageless maintenance enable`');
    expect(errors.notDisableable('mod_quiz', 'plugins/mod/quiz/version.ts', 'no').hint).toContain('disableable: true');
  });

  it('what `maintenance enable --component` and the admin pause answer for a subplugin and an unknown name', async () => {
    const pause = (component: string) => ({ kind: 'pause', component, reason: null, drainTimeoutMs: 0 }) as const;
    // Release 4: mod_assign declares disableable, so pausing it is the whole fix.
    const release4 = await discoverSite(join(RELEASES, '4'));
    const subplugin = thrown(() => checkOperatorAction(release4, pause('assignsubmission_file')));
    expect(subplugin.code).toBe('OUTAGELESS_ERR_NOT_DISABLEABLE');
    expect(subplugin.hint).toBe('Pause its parent instead: `outageless maintenance enable --component mod_assign` pauses mod_assign and its subplugins, assignsubmission_file among them.');
    // Release 1: it does not, so the declaration goes into the parent's version.ts.
    const release1 = await discoverSite(join(RELEASES, '1'));
    expect(thrown(() => checkOperatorAction(release1, pause('assignsubmission_file'))).hint).toContain('in plugins/mod/assign/version.ts, then run `outageless maintenance enable --component mod_assign`');
    const typo = thrown(() => checkOperatorAction(release1, { kind: 'purge-caches', component: 'mod_asign' }));
    expect(typo.code).toBe('OUTAGELESS_ERR_UNKNOWN_COMPONENT');
    expect(typo.hint).toMatch(/^Did you mean `mod_assign`\?/);
    expect(thrown(() => checkOperatorAction(release1, pause('mod_asign'))).code).toBe('OUTAGELESS_ERR_UNKNOWN_COMPONENT');
  });

  it('one code for an unknown component, with did-you-mean, wherever the name was typed', () => {
    const known = ['core', 'mod_assign', 'mod_quiz'];
    const typo = errors.unknownComponent('mod_asign', known, '/srv/lms');
    expect(typo.code).toBe('OUTAGELESS_ERR_UNKNOWN_COMPONENT');
    expect(typo.message).toBe('no component "mod_asign" on disk under /srv/lms');
    expect(typo.hint).toBe('Did you mean `mod_assign`? Components of this site: core, mod_assign, mod_quiz. Or point --root at the site that has mod_asign.');
    expect(errors.unknownComponent('block_nothing', known).hint).toBe('Components of this site: core, mod_assign, mod_quiz.');
    // The caches folder's name for it is the same factory, so the same code.
    expect(cacheErrors.unknownComponent).toBe(errors.unknownComponent);
    const codes = [...Object.values(errors), ...Object.values(cacheErrors)].map((factory) => factory.code).filter((code) => code.includes('UNKNOWN_COMPONENT'));
    expect(new Set(codes)).toEqual(new Set(['OUTAGELESS_ERR_UNKNOWN_COMPONENT']));
  });

  it('an unreachable server keeps the generic fix', async () => {
    const error = await rejection(openDatabase('postgres://postgres@127.0.0.1:1/lms'));
    expect(error.code).toBe('OUTAGELESS_ERR_DATABASE_UNREACHABLE');
    expect(error.hint).toBe('Check that the server runs and the URL (host, port, user, database) is right.');
  });

  it.skipIf(!postgresAvailable)('a database that does not exist (3D000) says to create it', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = '/ol_issue10_no_such_db';
    const error = await rejection(openDatabase(url.toString()));
    expect(error.code).toBe('OUTAGELESS_ERR_DATABASE_UNREACHABLE');
    expect(error.message).toContain('database "ol_issue10_no_such_db" does not exist');
    expect(error.hint).toBe('The server runs, but has no database "ol_issue10_no_such_db": create it with `createdb ol_issue10_no_such_db` (or CREATE DATABASE "ol_issue10_no_such_db"; in psql), or correct the database name in the URL.');
  });
});

describe.skipIf(!postgresAvailable)('on a database: install logs, and an upgrade refused for a changed db/ file', () => {
  let scratch: ScratchDatabase;
  let database: SiteDatabase;
  let site: SiteDir;
  beforeAll(async () => {
    scratch = await createScratchDatabase('issue10_bugs');
    database = await openDatabase(scratch.url);
    site = await createSiteDir(1);
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
    await site?.cleanup();
  });

  it('installing release 1 prints each log line with its component once (bug: "core: core: …")', async () => {
    const lines: string[] = [];
    const result = await runUpgrade({ database, code: await discoverSite(site.root), onEvent: (event) => lines.push(describeUpgradeEvent(event)) });
    expect(result.kind).toBe('upgraded');
    expect(lines).toContain('core: the site course, the admin user and the default settings are in place');
    expect(lines.filter((line) => /^([a-z_]+): \1: /.test(line))).toEqual([]);
    // A step that still writes its own prefix does not get a second one.
    expect(describeUpgradeEvent({ kind: 'log', component: 'core', message: 'core: done' })).toBe('core: done');
    expect(describeUpgradeEvent({ kind: 'log', component: 'mod_quiz', message: 'done' })).toBe('mod_quiz: done');
  });

  it('a bad db/upgrade.ts without a bump: the plan (--is-pending, status) and the upgrade refuse it, nothing is written', async () => {
    await site.edit(QUIZ_UPGRADE, (text) => text.replace('steps: [],', "steps: [{ version: 2026030100, id: 'quiz_future', outage: 'none', async run() {} }],"));
    // The upgrade log and the installed rows: what a run that wrote anything would change.
    const count = async () => ({
      log: (await database.db.selectFrom('outageless_upgrade_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n,
      components: await database.db.selectFrom('outageless_component').select(['component', 'version', 'definitions_hash']).orderBy('component').execute(),
    });
    const before = await count();
    for (const olderCode of ['throw', 'report'] as const) {
      expect((await rejection(readPlan(database.db, { root: site.root }, { olderCode }))).code).toBe('OUTAGELESS_ERR_STEP_ABOVE_VERSION');
    }
    expect((await rejection(runUpgrade({ database, code: await discoverSite(site.root) }))).code).toBe('OUTAGELESS_ERR_STEP_ABOVE_VERSION');
    expect(await count()).toEqual(before);
  });
});
