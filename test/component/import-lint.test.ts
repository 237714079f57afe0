/**
 * The step-import lint (the Totara rule): a component's db/upgrade.ts, db/install.ts and what
 * they import may import only outageless, kysely, Node built-ins and files under its own db/.
 *
 * The CLI suite installs release 3 of the example site (on PostgreSQL, else PGlite) and
 * deploys release 4, so mod_assign has a pending upgrade whose db/upgrade.ts is loaded by the
 * plan. Each case edits the code, runs `outageless lint` and `outageless upgrade`, checks what
 * they print and their exit codes, and checks that nothing moved in the database and no line of
 * the forbidden file ran (it writes a marker file when imported). Release 4 is redeployed after
 * every case; the last case upgrades for real with allowed imports.
 *
 * A second suite lists the import forms in-process (lintStepImports) on its own working copy.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discoverSite } from '../../src/component/discover.ts';
import { lintStepImports, type StepImportFinding } from '../../src/component/import-lint.ts';
import { cli, createSiteDir, REPO, type CliResult, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';

const ASSIGN_UPGRADE = 'plugins/mod/assign/db/upgrade.ts';
const ASSIGN_HELPERS = 'plugins/mod/assign/db/helpers.ts';
const GRADING = 'plugins/mod/assign/lib/grading.ts';
/** Written by GRADING when it is imported: its existence means plugin code ran. */
const GRADING_RAN = 'plugins/mod/assign/lib/grading-ran.txt';

/** Runtime code of mod_assign that a step must not import. */
const gradingLib = [
  "import { writeFileSync } from 'node:fs';",
  '',
  "writeFileSync(new URL('./grading-ran.txt', import.meta.url), 'imported');",
  'export type Grade = number;',
  'export const grade = (points: number): Grade => Math.min(100, points);',
  '',
].join('\n');

/** Puts `lines` above the first line of a file of the deployed release. */
const prepend = (site: SiteDir, path: string, ...lines: string[]) => site.edit(path, (text) => `${lines.join('\n')}\n${text}`);

interface LintJson {
  ok: boolean;
  code?: string;
  components: number;
  files: number;
  findings: StepImportFinding[];
}

/** `CODE: message` and the `  key: value` lines after it, as every command prints errors. */
function parseError(stderr: string): Record<string, string> {
  const lines = stderr.split('\n');
  const start = lines.findIndex((line) => /^OUTAGELESS_ERR_[A-Z_]+: /.test(line));
  if (start < 0) return {};
  const [, code, message] = /^(OUTAGELESS_ERR_[A-Z_]+): (.*)$/.exec(lines[start]!)!;
  const printed: Record<string, string> = { code: code!, message: message! };
  for (const line of lines.slice(start + 1)) {
    const match = /^ {2}(component|step|file|field|fix): (.*)$/.exec(line);
    if (!match) break;
    printed[match[1]!] = match[2]!;
  }
  return printed;
}

const show = (result: CliResult) => `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;

describe('outageless lint and the plan refuse plugin code in upgrade steps', { concurrent: false }, () => {
  let scratch: ScratchDatabase | undefined;
  let site: SiteDir;
  let parent: string;
  let url: string;

  const run = (...args: string[]) => cli([...args, '--root', site.root]);
  const upgrade = () => cli(['upgrade', '--non-interactive', '--root', site.root, '--database', url]);
  const lintJson = async (): Promise<{ result: CliResult; lint: LintJson }> => {
    const result = await run('lint', '--json');
    return { result, lint: JSON.parse(result.stdout) as LintJson };
  };
  /** Installed version per component, read with clean release 4 code on disk. */
  async function installed(): Promise<Record<string, number | null>> {
    const result = await cli(['status', '--json', '--root', site.root, '--database', url]);
    expect(result.code, show(result)).toBe(0);
    const status = JSON.parse(result.stdout) as { components: { component: string; installedVersion: number | null }[] };
    return Object.fromEntries(status.components.map((c) => [c.component, c.installedVersion]));
  }
  let release3: Record<string, number | null>;

  /** The refusal every violation gets from the plan: code, exit 6, file, component, fix, nothing written. */
  async function expectUpgradeRefused(file: string, component: string, specifier: string): Promise<void> {
    const result = await upgrade();
    expect(result.code, show(result)).toBe(6);
    const printed = parseError(result.stderr);
    expect(printed, show(result)).toMatchObject({ code: 'OUTAGELESS_ERR_STEP_IMPORT', file, component });
    expect(printed.message, show(result)).toContain(`"${specifier}"`);
    expect(printed.fix, show(result)).toMatch(/ctx\.db's query builder, or into a file under plugins\/.+\/db\//);
    expect(result.stderr, 'no stack trace, no warning').not.toMatch(/^\s+at |ExperimentalWarning/m);
    await site.deploy(4);
    expect(await installed(), 'the database moved').toEqual(release3);
  }

  beforeAll(async () => {
    site = await createSiteDir(3);
    // kysely is hoisted next to outageless in an installed app; the working copy links both.
    await symlink(join(REPO, 'node_modules', 'kysely'), join(site.root, 'node_modules', 'kysely'), 'dir');
    parent = await mkdtemp(join(tmpdir(), 'outageless-import-lint-'));
    // PostgreSQL when there is one (each CLI start there is cheaper than booting PGlite); the
    // rule is read from the code, so the database kind does not change what is tested.
    scratch = postgresAvailable ? await createScratchDatabase('import_lint') : undefined;
    url = scratch?.url ?? (await embeddedDatabaseUrl(join(parent, 'db')));
    const install = await upgrade();
    expect(install.code, show(install)).toBe(0);
    await site.deploy(4);
    release3 = await installed();
    // Control: mod_assign's upgrade (and so its db/upgrade.ts) is pending.
    expect(release3.mod_assign).toBe(2026030100);
    const pending = await cli(['upgrade', '--is-pending', '--root', site.root, '--database', url]);
    expect(pending.code, show(pending)).toBe(2);
  }, 120_000);

  afterEach(async () => {
    expect(existsSync(join(site.root, GRADING_RAN)), 'plugin code ran during lint or planning').toBe(false);
    await site.deploy(4);
  });

  afterAll(async () => {
    await site?.cleanup();
    await scratch?.drop();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  it('the example site lints clean, releases 3 and 4, without a database', async () => {
    for (const release of [3, 4]) {
      await site.deploy(release);
      const result = await run('lint');
      expect(result.code, show(result)).toBe(0);
      expect(result.stdout).toMatch(/^Lint OK: \d+ step file\(s\) in 11 component\(s\)/);
      expect(result.stderr, 'no ExperimentalWarning from stripTypeScriptTypes').toBe('');
    }
    const { result, lint } = await lintJson();
    expect(result.code).toBe(0);
    expect(lint).toMatchObject({ ok: true, components: 11, findings: [] });
    expect(lint.files).toBeGreaterThanOrEqual(11);
  });

  it("a step importing the component's own runtime code: lint exits 6, upgrade refuses with exit 6 and writes nothing", async () => {
    await site.write(GRADING, gradingLib);
    await prepend(site, ASSIGN_UPGRADE, "import { grade } from '../lib/grading.ts';", 'void grade;');

    const text = await run('lint');
    expect(text.code, show(text)).toBe(6);
    expect(text.stdout).toContain('OUTAGELESS_ERR_STEP_IMPORT: 1 import(s) in step files break the rule, in 1 component(s):');
    expect(text.stdout).toContain(`  - mod_assign: ${ASSIGN_UPGRADE}:1 imports "../lib/grading.ts" (${GRADING})`);
    expect(text.stdout).toContain("    fix: Steps run against the schema of their own version, long after the component's runtime code has moved on: move the logic into the step using ctx.db's query builder, or into a file under plugins/mod/assign/db/.");

    const { result, lint } = await lintJson();
    expect(result.code).toBe(6);
    expect(lint.ok).toBe(false);
    expect(lint.code).toBe('OUTAGELESS_ERR_STEP_IMPORT');
    expect(lint.findings).toEqual([
      expect.objectContaining({
        kind: 'forbidden-import', component: 'mod_assign', file: ASSIGN_UPGRADE, entry: ASSIGN_UPGRADE, line: 1,
        form: 'import', specifier: '../lib/grading.ts', resolved: GRADING,
      }),
    ]);

    await expectUpgradeRefused(ASSIGN_UPGRADE, 'mod_assign', '../lib/grading.ts');
  });

  it('a violation reached through a db/ helper names the helper and the step file it is reached from', async () => {
    await site.write(GRADING, gradingLib);
    await site.write(ASSIGN_HELPERS, ["import { createHash } from 'node:crypto';", "export { grade } from '../lib/grading.ts';", "export const digest = (s: string) => createHash('sha256').update(s).digest('hex');", ''].join('\n'));
    await prepend(site, ASSIGN_UPGRADE, "import { digest } from './helpers.ts';", 'void digest;');
    const { result, lint } = await lintJson();
    expect(result.code, show(result)).toBe(6);
    expect(lint.findings).toEqual([
      expect.objectContaining({
        kind: 'forbidden-import', component: 'mod_assign', file: ASSIGN_HELPERS, entry: ASSIGN_UPGRADE, line: 2,
        form: 'export-from', specifier: '../lib/grading.ts', resolved: GRADING,
      }),
    ]);
    const text = await run('lint');
    expect(text.stdout).toContain(`    reached from: ${ASSIGN_UPGRADE}`);

    await expectUpgradeRefused(ASSIGN_HELPERS, 'mod_assign', '../lib/grading.ts');
  });

  it("a new component's db/install.ts importing its runtime code is refused before the install", async () => {
    await site.write('plugins/local/extra/version.ts', "import { defineVersion } from 'outageless';\n\nexport default defineVersion({ component: 'local_extra', version: 2026040100, requires: 2026010100 });\n");
    await site.write('plugins/local/extra/index.ts', 'export const seedRows = [1, 2, 3];\n');
    await site.write('plugins/local/extra/db/install.ts', "import { defineInstall } from 'outageless';\nimport { seedRows } from '../index.ts';\n\nexport default defineInstall(async () => { void seedRows; });\n");
    const { result, lint } = await lintJson();
    expect(result.code, show(result)).toBe(6);
    expect(lint.findings).toEqual([
      expect.objectContaining({ component: 'local_extra', file: 'plugins/local/extra/db/install.ts', line: 2, specifier: '../index.ts', resolved: 'plugins/local/extra/index.ts' }),
    ]);
    const refused = await upgrade();
    expect(refused.code, show(refused)).toBe(6);
    expect(parseError(refused.stderr)).toMatchObject({ code: 'OUTAGELESS_ERR_STEP_IMPORT', file: 'plugins/local/extra/db/install.ts', component: 'local_extra' });
    await site.remove('plugins/local/extra');
    expect(await installed(), 'the database moved').toEqual(release3);
  });

  // Last: it upgrades the site to release 4.
  it('allowed imports (node:crypto, a bare built-in, kysely, type-only, sibling db/ files in a cycle) lint clean and the upgrade runs', async () => {
    await site.write(GRADING, gradingLib);
    await site.write(ASSIGN_HELPERS, [
      "import { basename } from 'path';",
      "import { sql } from 'kysely';",
      "import { again } from './cycle.ts';",
      "export const note = (s: string) => `${basename(s)} ${again}`;",
      'export const now = sql`now()`;',
      '',
    ].join('\n'));
    await site.write('plugins/mod/assign/db/cycle.ts', "import { note } from './helpers.ts';\nexport const again = 'again';\nexport const noted = () => note('x');\n");
    await prepend(site, ASSIGN_UPGRADE,
      "import { randomUUID } from 'node:crypto';",
      "import type { Grade } from '../lib/grading.ts';",
      "import { note } from './helpers.ts';",
      "// A comment that says import('../lib/grading.ts') or require('pg') imports nothing.",
      "const said = \"require('pg')\";",
      'void randomUUID; void note; void said;',
      'export type Kept = Grade;',
    );
    const { result, lint } = await lintJson();
    expect(result.code, show(result)).toBe(0);
    expect(lint.findings).toEqual([]);

    const upgraded = await upgrade();
    expect(upgraded.code, show(upgraded)).toBe(0);
    expect((await installed()).mod_assign).toBe(2026040100);
  });
});

describe('lintStepImports: which import forms are caught', () => {
  let site: SiteDir;

  beforeAll(async () => {
    site = await createSiteDir(4);
  });
  afterAll(async () => {
    await site?.cleanup();
  });

  it('static, type-qualified, re-export, dynamic, require, computed, another plugin, npm packages, outageless subpaths, a symlink out of db/', async () => {
    await site.write(GRADING, gradingLib);
    await symlink(join(site.root, GRADING), join(site.root, 'plugins/mod/assign/db/linked.ts'));
    await prepend(site, ASSIGN_UPGRADE,
      "import { createRequire } from 'node:module';",                       // 1 allowed
      "import { type Grade } from '../lib/grading.ts';",                      // 2 a real import once types are stripped
      "import '../../quiz/index.ts';",                                        // 3 another plugin's runtime
      "import pino from 'pino';",                                             // 4 an npm package
      "import { defineUpgrade as d } from 'outageless/host';",                // 5 not the lean entry
      "import { jsonArrayFrom } from 'kysely/helpers/postgres';",            // 6 only kysely itself
      "import './linked.ts';",                                                // 7 a symlink to ../lib
      "export * from '../index.ts';",                                         // 8
      'const require = createRequire(import.meta.url);',
      "const pg = require('pg');",                                            // 10
      "const later = () => import('../lib/grading.ts');",                     // 11
      "const named = (name: string) => import(name);",                        // 12 computed
      'void pino; void d; void jsonArrayFrom; void pg; void later; void named; export type G = Grade;',
    );
    const code = await discoverSite(site.root);
    const { findings, files } = await lintStepImports(code, code.components.get('mod_assign')!);
    expect(files).toEqual([ASSIGN_UPGRADE]);
    const summary = findings.map((f) => [f.line, f.form, f.kind === 'forbidden-import' ? f.specifier : f.expression, f.kind === 'forbidden-import' ? f.resolved : undefined]);
    expect(summary).toEqual([
      [2, 'import', '../lib/grading.ts', GRADING],
      [3, 'import', '../../quiz/index.ts', 'plugins/mod/quiz/index.ts'],
      [4, 'import', 'pino', undefined],
      [5, 'import', 'outageless/host', undefined],
      [6, 'import', 'kysely/helpers/postgres', undefined],
      [7, 'import', './linked.ts', GRADING],
      [8, 'export-from', '../index.ts', 'plugins/mod/assign/index.ts'],
      [10, 'require', 'pg', undefined],
      [11, 'dynamic-import', '../lib/grading.ts', GRADING],
      [12, 'dynamic-import', 'import(name)', undefined],
    ]);
    expect(findings.find((f) => f.line === 12)?.kind).toBe('computed-import');
    expect(findings.every((f) => f.component === 'mod_assign' && f.file === ASSIGN_UPGRADE)).toBe(true);
  });

  it('a step file Node could not parse is a load failure naming it, not a guess', async () => {
    await site.deploy(4);
    await prepend(site, ASSIGN_UPGRADE, 'enum Mode { Online }', 'void Mode;');
    const code = await discoverSite(site.root);
    await expect(lintStepImports(code, code.components.get('mod_assign')!)).rejects.toMatchObject({
      code: 'OUTAGELESS_ERR_LOAD_FAILED',
      location: { file: ASSIGN_UPGRADE, component: 'mod_assign' },
    });
  });
});
