import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Command } from 'commander';
import { ExitCode } from '../errors.ts';
import { output, type CommandResult } from './context.ts';
import { initErrors } from './init-errors.ts';
import { ownPackageJson } from './node-version.ts';
import { GITIGNORE_LINES, packageFields, SCAFFOLD_PLUGIN, siteTemplates, type SiteTemplateInput } from './init-templates.ts';

/** What init did to one file. `kept`: it existed and init left it alone (no `--force`). */
export type InitFileAction = 'created' | 'overwritten' | 'updated' | 'kept';

/** The outcome of {@link initSite}: every file of the scaffold and what happened to it. */
export interface InitResult {
  readonly root: string;
  readonly files: readonly { readonly path: string; readonly action: InitFileAction }[];
  /** True when `node_modules/outageless` is there already, so `npm install` is not needed first. */
  readonly installed: boolean;
}

export interface InitOptions {
  /** Write the scaffold over a site that is there (its other files stay); set `"type": "module"`. */
  readonly force?: boolean;
  /** The day the versions are made of (tests pin it); default now, in UTC. */
  readonly now?: Date;
}

/** npm's rules for a package name: lower case, URL-safe, not starting with `.` or `_`. */
function packageName(root: string): string {
  const name = basename(root).toLowerCase().replace(/[^a-z0-9._~-]+/g, '-').replace(/^[._-]+/, '').slice(0, 214);
  return name || 'outageless-site';
}

async function kindOf(path: string): Promise<'missing' | 'directory' | 'file'> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'file';
  } catch {
    return 'missing';
  }
}

type PackageJson = Record<string, unknown>;

async function readPackageJson(file: string, shown: string): Promise<PackageJson | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw initErrors.packageJsonInvalid(shown, error instanceof Error ? error.message : String(error));
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw initErrors.packageJsonInvalid(shown, 'it is not a JSON object');
  return parsed as PackageJson;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Adds init's fields to a package.json, keeping everything it has: a dependency, script or
 * engine the site already names wins. Only `type` is replaced (the caller refused a
 * conflicting one unless forced).
 */
function mergePackageJson(existing: PackageJson, fields: ReturnType<typeof packageFields>): PackageJson {
  const named = (key: string) => (isRecord(existing[key]) ? (existing[key] as Record<string, unknown>) : {});
  const dependencies = { ...named('dependencies') };
  for (const [name, range] of Object.entries(fields.dependencies)) {
    if (!(name in dependencies) && !(name in named('devDependencies'))) dependencies[name] = range;
  }
  const engines = named('engines');
  return {
    ...existing,
    type: fields.type,
    engines: 'node' in engines ? engines : { ...engines, node: fields.engines.node },
    scripts: { ...fields.scripts, ...named('scripts') },
    dependencies,
  };
}

/**
 * Scaffolds a runnable site into `dir`: package.json (`"type": "module"`, outageless as a
 * dependency), core, the plugin `local_hello` with a table, an upgrade step, initial data
 * and a route, a tsconfig.json for editors and a .gitignore for the embedded database.
 * Refuses, writing nothing, a directory that holds a site (`core/` or `plugins/`) or whose
 * package.json says another `type`, unless `force`. An existing package.json and .gitignore
 * are added to, never replaced.
 *
 * @example
 * ```ts
 * const result = await initSite('my-site')
 * // result.files: [{ path: 'package.json', action: 'created' }, { path: 'core/version.ts', … }, …]
 * ```
 */
export async function initSite(dir: string, options: InitOptions = {}): Promise<InitResult> {
  const root = resolve(dir);
  const shown = (path: string) => relative(process.cwd(), join(root, path)) || '.';
  const rootKind = await kindOf(root);
  if (rootKind === 'file') throw initErrors.notADirectory(shown('.'));

  // Every check comes before the first write: a refused init leaves the directory as it was.
  const found = (await Promise.all(['core', 'plugins'].map(async (name) => ((await kindOf(join(root, name))) === 'missing' ? undefined : `${name}/`)))).filter(
    (name): name is string => name !== undefined,
  );
  if (found.length > 0 && !options.force) throw initErrors.siteExists(shown('.'), found);
  const existingPackage = await readPackageJson(join(root, 'package.json'), shown('package.json'));
  if (existingPackage && existingPackage.type !== undefined && existingPackage.type !== 'module' && !options.force) {
    throw initErrors.packageType(shown('package.json'), existingPackage.type);
  }

  const manifest = ownPackageJson();
  const input: SiteTemplateInput = {
    name: typeof existingPackage?.name === 'string' ? existingPackage.name : packageName(root),
    date: (options.now ?? new Date()).toISOString().slice(0, 10).replaceAll('-', ''),
    outagelessVersion: manifest.version,
    fastifyRange: manifest.dependencies?.fastify ?? '^5',
    nodeRange: manifest.engines?.node ?? '>=22.12',
  };
  const writes: { path: string; text: string; action: InitFileAction }[] = [];

  const fields = packageFields(input);
  const packageJson = existingPackage ? mergePackageJson(existingPackage, fields) : { name: input.name, version: '0.1.0', private: true, ...fields };
  const packageText = `${JSON.stringify(packageJson, null, 2)}\n`;
  const packageChanged = !existingPackage || JSON.stringify(existingPackage) !== JSON.stringify(packageJson);
  writes.push({ path: 'package.json', text: packageText, action: !existingPackage ? 'created' : packageChanged ? 'updated' : 'kept' });

  const gitignore = await readFile(join(root, '.gitignore'), 'utf8').catch(() => undefined);
  const present = new Set((gitignore ?? '').split('\n').map((line) => line.trim()));
  const missing = GITIGNORE_LINES.filter((line) => !present.has(line) && !present.has(line.replace(/\/$/, '')));
  const gitignoreText = gitignore === undefined ? `${GITIGNORE_LINES.join('\n')}\n` : `${gitignore}${gitignore === '' || gitignore.endsWith('\n') ? '' : '\n'}${missing.map((line) => `${line}\n`).join('')}`;
  writes.push({ path: '.gitignore', text: gitignoreText, action: gitignore === undefined ? 'created' : missing.length > 0 ? 'updated' : 'kept' });

  for (const file of siteTemplates(input)) {
    const exists = (await kindOf(join(root, file.path))) !== 'missing';
    writes.push({ ...file, action: !exists ? 'created' : options.force ? 'overwritten' : 'kept' });
  }

  for (const file of writes) {
    if (file.action === 'kept') continue;
    const target = join(root, file.path);
    try {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, file.text);
    } catch (error) {
      // A read-only or full disk, a directory in the file's place: say which file and what to do.
      throw initErrors.writeFailed(file.path, error);
    }
  }
  return {
    root,
    files: writes.map(({ path, action }) => ({ path, action })),
    installed: existsSync(join(root, 'node_modules', 'outageless', 'package.json')),
  };
}

/** The commands that take a new site from here to served, in order. */
function nextSteps(result: InitResult): string[] {
  const into = relative(process.cwd(), result.root);
  return [
    ...(into ? [`cd ${into}`] : []),
    ...(result.installed ? [] : ['npm install']),
    'npx outageless upgrade',
    `npx outageless serve       # then open http://127.0.0.1:3000${SCAFFOLD_PLUGIN.route}`,
  ];
}

/** `outageless init [dir] [--force] [--json]`: scaffolds a runnable site. */
export function initCommand(run: (result: Promise<CommandResult>) => void): Command {
  return new Command('init')
    .description(`scaffold a runnable site (package.json, core, the plugin ${SCAFFOLD_PLUGIN.component} with a table, a step and a route) into dir`)
    .argument('[dir]', 'directory of the new site (created if missing)', '.')
    .option('--force', 'write the scaffold over a site that is there (files it does not write stay), and set "type": "module"')
    .option('--json', 'machine-readable output')
    .action((dir: string, options: { force?: boolean; json?: boolean }) =>
      run(
        (async () => {
          const result = await initSite(dir, { force: options.force === true });
          const out = output({ root: result.root, ...(options.json ? { json: true } : {}) });
          out.text(`A new outageless site in ${result.root}:`);
          for (const file of result.files) out.text(`  ${file.action.padEnd(11)} ${file.path}`);
          out.text(`\nNext:\n${nextSteps(result).map((line) => `  ${line}`).join('\n')}`);
          out.json({ root: result.root, files: result.files, next: nextSteps(result) });
          return ExitCode.ok;
        })(),
      ),
    );
}
