import { readFile, realpath, stat } from 'node:fs/promises';
import module from 'node:module';
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init as initLexer, parse as lexImports } from 'es-module-lexer';
import { errors, type OutagelessError } from '../errors.ts';
import type { Component, SiteCode } from './discover.ts';
import { componentErrors } from './errors.ts';

/**
 * The step-import lint (the Totara rule): a component's `db/upgrade.ts`, `db/install.ts` and
 * every file they import may import only `outageless`, `kysely`, Node built-ins and files
 * under the same component's `db/`.
 *
 * Why: a step written for version N runs on sites that upgrade from any older release, long
 * after the component's models, libraries and other plugins have moved on. A step that calls
 * `../lib/grading.ts` runs whatever that file says today against the schema of version N,
 * which breaks in ways no test of the step catches. Steps carry their own queries instead.
 *
 * Imports are read the way Node will run the file: `stripTypeScriptTypes` from `node:module`
 * turns the TypeScript into JavaScript (so `import type` is gone and `import { type X }` is
 * still a real import), then es-module-lexer lists static imports, re-exports, `import()`
 * and `require()`.
 */

/** The entry files the rule applies to. */
export type StepFile = 'upgrade.ts' | 'install.ts';
export const STEP_FILES: readonly StepFile[] = ['upgrade.ts', 'install.ts'];

/** How the import is written. */
export type ImportForm = 'import' | 'export-from' | 'dynamic-import' | 'require';

interface FindingBase {
  readonly component: string;
  /** The file holding the import, relative to the site root. */
  readonly file: string;
  readonly line: number;
  readonly form: ImportForm;
  /** The step file (`<component>/db/upgrade.ts` or `install.ts`) the file is reached from. */
  readonly entry: string;
  /** What to do about it. */
  readonly fix: string;
}

/** An import of something that is not step code: runtime code, another plugin, an npm package. */
export interface ForbiddenImport extends FindingBase {
  readonly kind: 'forbidden-import';
  /** The specifier as written. */
  readonly specifier: string;
  /** Where a relative or file specifier points, relative to the site root. */
  readonly resolved: string | undefined;
}

/** `import(expr)` or `require(expr)` whose module is known only at run time, so it cannot be checked. */
export interface ComputedImport extends FindingBase {
  readonly kind: 'computed-import';
  /** The expression as written, e.g. `import(name)`. */
  readonly expression: string;
}

export type StepImportFinding = ForbiddenImport | ComputedImport;

/** The lint of one component. */
export interface StepImportLint {
  readonly component: string;
  /** Every file checked (step files and the db/ files they import), relative to the site root. */
  readonly files: readonly string[];
  readonly findings: readonly StepImportFinding[];
}

/** Bare specifiers a step may import. Exact names: `outageless/host` or `kysely/helpers/…` are not step code. */
const ALLOWED_PACKAGES: ReadonlySet<string> = new Set(['outageless', 'kysely']);
const BUILTINS: ReadonlySet<string> = new Set(module.builtinModules);
/** Files followed into: anything else under db/ (JSON, say) holds no imports. */
const CODE_EXTENSIONS: ReadonlySet<string> = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs']);
const TYPESCRIPT_EXTENSIONS: ReadonlySet<string> = new Set(['.ts', '.mts', '.cts']);

function isAllowedPackage(specifier: string): boolean {
  return ALLOWED_PACKAGES.has(specifier) || specifier.startsWith('node:') || BUILTINS.has(specifier);
}

/**
 * Lists the imports of a component's step files that break the rule, following imports of
 * files under its `db/` transitively. A component without step files has nothing to check.
 * A file Node could not parse fails with `OUTAGELESS_ERR_LOAD_FAILED` (loading it would too);
 * a file whose imports cannot be listed fails with `OUTAGELESS_ERR_STEP_IMPORT_UNCHECKED`.
 *
 * @example
 * ```ts
 * const code = await discoverSite('examples/lms/releases/3')
 * const { findings } = await lintStepImports(code, code.components.get('mod_assign')!)
 * for (const f of findings) console.log(`${f.file}:${f.line} ${f.kind === 'forbidden-import' ? f.specifier : f.expression}`)
 * ```
 */
export async function lintStepImports(code: SiteCode, component: Component, entries: readonly StepFile[] = STEP_FILES): Promise<StepImportLint> {
  const dbDir = join(component.dir, 'db');
  // Symlinks are followed, so a db/ file that links to ../lib is seen as what it is.
  const realDbDir = await realpath(dbDir).catch(() => dbDir);
  const display = (path: string) => relative(code.root, path);
  // A symlinked target is shown where it really is; the root itself may sit behind a link.
  const realRoot = await realpath(code.root).catch(() => code.root);
  const displayTarget = (target: string, real: string) => (real === target ? display(target) : relative(realRoot, real));
  const files: string[] = [];
  const findings: StepImportFinding[] = [];
  const seen = new Set<string>();

  for (const entry of entries) {
    const entryFile = join(dbDir, entry);
    if (!(await isFile(entryFile))) continue;
    const queue = [entryFile];
    while (queue.length > 0) {
      const file = queue.shift()!;
      const real = await realpath(file).catch(() => file);
      if (seen.has(real)) continue;
      seen.add(real);
      files.push(display(file));
      for (const found of await listImports(file, component.name, display(file))) {
        const base = { component: component.name, file: display(file), line: found.line, form: found.form, entry: display(entryFile) };
        if (found.specifier === undefined) {
          findings.push({ kind: 'computed-import', ...base, expression: found.text, fix: fixFor(code, component, base, found.text, undefined, true) });
          continue;
        }
        const target = resolveLocal(file, found.specifier);
        if (target === undefined) {
          if (!isAllowedPackage(found.specifier)) {
            findings.push({ kind: 'forbidden-import', ...base, specifier: found.specifier, resolved: undefined, fix: fixFor(code, component, base, found.specifier, undefined, false) });
          }
          continue;
        }
        const realTarget = await realpath(target).catch(() => target);
        if (!isInside(realDbDir, realTarget) && !isInside(dbDir, realTarget)) {
          const resolved = displayTarget(target, realTarget);
          findings.push({ kind: 'forbidden-import', ...base, specifier: found.specifier, resolved, fix: fixFor(code, component, base, found.specifier, resolved, false) });
          continue;
        }
        // A missing file is left to the import, which reports it as a load failure.
        if (CODE_EXTENSIONS.has(extname(target)) && (await isFile(target))) queue.push(target);
      }
    }
  }
  return { component: component.name, files, findings };
}

/**
 * Throws `OUTAGELESS_ERR_STEP_IMPORT` (exit 6) for the first finding of one step file and
 * what it imports; the plan calls it before importing the file, so nothing of a component
 * that breaks the rule is ever run.
 *
 * @example
 * ```ts
 * await assertStepImports(code, component, 'upgrade.ts')   // throws on `import '../lib/x.ts'`
 * const upgrade = await importDefault(join(component.dir, 'db', 'upgrade.ts'))
 * ```
 */
export async function assertStepImports(code: SiteCode, component: Component, entry: StepFile): Promise<void> {
  const { findings } = await lintStepImports(code, component, [entry]);
  const [first] = findings;
  if (first) throw stepImportError(code, component, first, findings.length - 1);
}

/**
 * The coded error for a finding, naming the import, the file and the fix.
 *
 * @example
 * ```ts
 * const { findings } = await lintStepImports(code, component)
 * if (findings[0]) throw stepImportError(code, component, findings[0], findings.length - 1)
 * ```
 */
export function stepImportError(code: SiteCode, component: Component, finding: StepImportFinding, more = 0): OutagelessError {
  return componentErrors.stepImport({
    file: finding.file,
    line: finding.line,
    component: finding.component,
    specifier: finding.kind === 'forbidden-import' ? finding.specifier : finding.expression,
    computed: finding.kind === 'computed-import',
    entry: finding.entry,
    resolved: finding.kind === 'forbidden-import' ? finding.resolved : undefined,
    dbDir: relative(code.root, join(component.dir, 'db')),
    more,
  });
}

function fixFor(
  code: SiteCode,
  component: Component,
  base: Omit<FindingBase, 'fix'>,
  specifier: string,
  resolved: string | undefined,
  computed: boolean,
): string {
  // One wording for the lint's listing and the plan's error: the factory owns it.
  const dbDir = relative(code.root, join(component.dir, 'db'));
  return componentErrors.stepImport({ ...base, specifier, resolved, computed, dbDir, more: 0 }).hint ?? '';
}

/** One import of a file, as {@link listImports} finds it. */
export interface FoundImport {
  /** undefined: computed at run time. */
  readonly specifier: string | undefined;
  /** The whole import as written. */
  readonly text: string;
  readonly line: number;
  readonly form: ImportForm;
}

/**
 * `require(` becomes `import (`: the same length, so every offset still points into the
 * original text, and the lexer (which knows strings, comments and regular expressions)
 * then reports calls of `require` as dynamic imports and ignores the word anywhere else.
 * Method calls (`x.require(`) are not `require`.
 */
const REQUIRE_CALL = /(?<![\w$.])require(?=\s*\()/g;

/**
 * Every import of `file` (static, re-export, `import()`, `require()`), read the way Node runs
 * it. The discovery cache uses it too, to learn which files a `version.ts` depends on.
 *
 * @example
 * ```ts
 * const found = await listImports('/site/plugins/mod/assign/version.ts', 'mod_assign', 'plugins/mod/assign/version.ts')
 * found.map((f) => f.specifier) // ['outageless']
 * ```
 */
export async function listImports(file: string, component: string, shown: string): Promise<FoundImport[]> {
  const source = await readFile(file, 'utf8');
  const plain = plainPackageImports(source);
  if (plain) return plain;
  const javascript = TYPESCRIPT_EXTENSIONS.has(extname(file)) ? stripTypes(source, shown, component) : source;
  let imports;
  try {
    await initLexer();
    [imports] = lexImports(javascript.replace(REQUIRE_CALL, 'import '), shown);
  } catch (error) {
    throw componentErrors.stepImportUnchecked(
      shown,
      component,
      `es-module-lexer could not read it (${error instanceof Error ? error.message : String(error)})`,
      'Simplify the syntax near that position, or move the code that uses it out of the step files.',
    );
  }
  const found: FoundImport[] = [];
  for (const entry of imports) {
    if (entry.type === 'import-meta') continue;
    const text = source.slice(entry.importStart, entry.importEnd);
    const line = lineOf(source, entry.importStart);
    if (entry.type === 'dynamic') {
      const form: ImportForm = source.startsWith('require', entry.importStart) ? 'require' : 'dynamic-import';
      // A template with substitutions is a glob, not one module.
      found.push({ specifier: entry.glob ? undefined : entry.specifier, text, line, form });
    } else {
      found.push({ specifier: entry.specifier, text, line, form: source.startsWith('export', entry.importStart) ? 'export-from' : 'import' });
    }
  }
  return found;
}

/** `import { a, type B } from 'outageless';` (or `kysely`, or `import type {…}`), alone on its line. */
const PLAIN_PACKAGE_IMPORT = /^[ \t]*import[ \t]+(?:type[ \t]+)?\{[\w\s,$]*\}[ \t]*from[ \t]*(['"])(outageless|kysely)\1[ \t]*;?[ \t]*$/gm;

/**
 * The imports of a file that imports only `outageless` or `kysely`, each on a line of its own
 * with nothing else there: once those lines are removed, the words `import`, `require` and
 * `from` appear nowhere in the text (not even in a comment or a string). undefined for any
 * other file, which goes through the type stripper and the lexer. Why: the stripper is loaded
 * on first use (about 100 ms, more on a busy machine), and the step files of a typical
 * component import `outageless` alone, so `upgrade --is-pending` need not load it at all.
 * An `import type` line is reported as an import, which changes nothing: both packages are allowed.
 *
 * @example
 * ```ts
 * plainPackageImports("import { defineVersion } from 'outageless';\nexport default defineVersion({ … })")
 * // => [{ specifier: 'outageless', form: 'import', line: 1, … }]
 * ```
 */
export function plainPackageImports(source: string): FoundImport[] | undefined {
  const found: FoundImport[] = [];
  const rest = source.replace(PLAIN_PACKAGE_IMPORT, (text: string, _quote: string, specifier: string, offset: number) => {
    found.push({ specifier, text: text.trim(), line: lineOf(source, offset), form: 'import' });
    return '';
  });
  return /\b(?:import|require|from)\b/.test(rest) ? undefined : found;
}

/** `stripTypeScriptTypes` with its one-time ExperimentalWarning silenced. */
function stripTypes(source: string, shown: string, component: string): string {
  // Node 22.12 lacks it; guessing imports from the TypeScript text could pass a bad import.
  if (typeof module.stripTypeScriptTypes !== 'function') {
    throw componentErrors.stepImportUnchecked(
      shown,
      component,
      `this Node.js (${process.version}) has no stripTypeScriptTypes in node:module`,
      'Run outageless on Node.js 22.13 or later (24 recommended).',
    );
  }
  // Node 24 warns once per process that the function is experimental. That line on an
  // operator's terminal says nothing about their site, and it would come before the first
  // line of an error that scripts parse; the call is synchronous, so nothing else can warn
  // while the filter is in place.
  const emitWarning = process.emitWarning;
  process.emitWarning = function filtered(this: unknown, warning: string | Error, ...rest: unknown[]) {
    if (String(typeof warning === 'string' ? warning : warning.message).includes('stripTypeScriptTypes')) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return module.stripTypeScriptTypes(source, { mode: 'strip' });
  } catch (error) {
    // Node's loader strips with the same parser, so importing the file would fail the same way.
    throw errors.loadFailed(shown, error, component);
  } finally {
    process.emitWarning = emitWarning;
  }
}

/**
 * The file a relative, absolute or `file:` specifier names; undefined for a bare specifier.
 *
 * @example
 * ```ts
 * resolveLocal('/site/plugins/mod/assign/db/upgrade.ts', './lib.ts') // '/site/plugins/mod/assign/db/lib.ts'
 * resolveLocal('/site/plugins/mod/assign/db/upgrade.ts', 'kysely')   // undefined
 * ```
 */
export function resolveLocal(importer: string, specifier: string): string | undefined {
  if (specifier.startsWith('file:')) {
    try {
      return fileURLToPath(specifier);
    } catch {
      return undefined;
    }
  }
  if (!specifier.startsWith('.') && !isAbsolute(specifier)) return undefined;
  // A query or hash (`./x.ts?v=2`) names the same file.
  return resolve(dirname(importer), specifier.replace(/[?#].*$/, ''));
}

function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function lineOf(source: string, offset: number): number {
  let line = 1;
  for (let i = source.indexOf('\n'); i !== -1 && i < offset; i = source.indexOf('\n', i + 1)) line++;
  return line;
}
