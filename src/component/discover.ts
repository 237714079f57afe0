import { readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { errors, isOutagelessError, OutagelessError } from '../errors.ts';
import type { VersionDefinition } from './definitions.ts';
import { hashDefinitions, type DefinitionsHash } from './definitions-hash.ts';
import { openDiscoveryCache, type DiscoveryCache } from './discovery-cache.ts';
import { importDefinitionFile, loadTimeoutMs, type DefinitionFile } from './load.ts';
import { validateVersion } from './manifest.ts';

/** A component found on disk, with its validated `version.ts` and `db/` fingerprint. */
export interface Component {
  /** `core` or `<type>_<name>`. */
  readonly name: string;
  /** Plugin type (`mod`, `assignsubmission`), or `core`. */
  readonly type: string;
  readonly dir: string;
  /** The parent component of a subplugin. */
  readonly parent: string | undefined;
  readonly manifest: VersionDefinition;
  readonly versionFile: string;
  readonly definitions: DefinitionsHash;
}

/** The code on disk: every component of a site, keyed by name. */
export interface SiteCode {
  readonly root: string;
  readonly components: ReadonlyMap<string, Component>;
  readonly core: Component;
}

/** Plugin types a site may have when core does not list its own (Moodle's common ones). */
export const DEFAULT_PLUGIN_TYPES: readonly string[] = [
  'theme', 'auth', 'enrol', 'format', 'block', 'mod', 'qtype', 'filter', 'editor', 'repository', 'report', 'tool', 'local',
];

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** True when `path` is strictly below `dir` (not `dir` itself, not beside or above it). */
function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

async function subdirectories(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true });
  return entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.')).map((entry) => entry.name).sort();
}

async function loadComponent(root: string, dir: string, name: string, type: string, parent: string | undefined, cache: DiscoveryCache | undefined): Promise<Component> {
  const versionFile = join(dir, 'version.ts');
  const display = relative(root, versionFile);
  const cached = cache?.lookup(dir, name, type, parent);
  if (cached) return { name, type, dir, parent, manifest: cached.manifest, versionFile: display, definitions: cached.definitions };
  // Stamped before the import: an edit made while it runs shows as a change next time.
  const recording = await cache?.prepare(dir, name, type, parent);
  let found: DefinitionFile;
  try {
    found = await importDefinitionFile(versionFile, name);
  } catch (error) {
    if (isOutagelessError(error, errors.loadTimeout.code)) throw errors.loadTimeout(display, loadTimeoutMs(), name);
    if (error instanceof OutagelessError) throw errors.loadFailed(display, error.cause, name);
    throw error;
  }
  if (found.kind === 'missing') throw errors.fileMissing(display, name, 'every component directory needs a version.ts');
  if (found.kind === 'no-default') throw errors.noDefaultExport(display, name, `defineVersion({ component: '${name}', version: YYYYMMDDXX })`, found.named);
  const manifest = validateVersion(display, found.value, name);
  const definitions = hashDefinitions(dir);
  recording?.record({ manifest, definitions });
  return { name, type, dir, parent, manifest, versionFile: display, definitions };
}

/**
 * Finds every component under `root`: `core/`, `plugins/<type>/<name>/`, and the subplugins
 * each plugin declares. Validates manifests and cross-component facts (dependencies,
 * `requires`), so nothing downstream sees an inconsistent site.
 *
 * @example
 * ```ts
 * const code = await discoverSite('examples/lms/releases/1')
 * code.components.get('mod_assign')?.manifest.version // 2026010100
 * ```
 */
export async function discoverSite(rootDir: string): Promise<SiteCode> {
  const root = resolve(rootDir);
  if (!(await isDirectory(join(root, 'core')))) {
    throw new OutagelessError('OUTAGELESS_ERR_NO_SITE', `no core/ directory under ${root}`, {
      location: { file: join(root, 'core', 'version.ts') },
      hint: 'Point --root at the application directory that holds core/ and plugins/.',
    });
  }
  // Unchanged components come from the cache (discovery-cache.ts) instead of being imported.
  const cache = openDiscoveryCache(root);
  const core = await loadComponent(root, join(root, 'core'), 'core', 'core', undefined, cache);
  const pluginTypes = core.manifest.pluginTypes ?? DEFAULT_PLUGIN_TYPES;

  const pluginsDir = join(root, 'plugins');
  const sources = new Map<string, string>([['core', 'core']]);
  const claim = (name: string, dir: string) => {
    const first = sources.get(name);
    if (first) throw errors.duplicateComponent(name, first, relative(root, dir));
    sources.set(name, relative(root, dir));
  };

  // Directory checks come before any import, so a bad layout is reported as itself and no
  // abandoned import can fail after the process has decided to exit.
  const pluginDirs: { dir: string; name: string; type: string }[] = [];
  if (await isDirectory(pluginsDir)) {
    for (const type of await subdirectories(pluginsDir)) {
      if (!pluginTypes.includes(type)) throw errors.unknownPluginType(relative(root, join(pluginsDir, type)), type, pluginTypes);
      for (const name of await subdirectories(join(pluginsDir, type))) {
        pluginDirs.push({ dir: join(pluginsDir, type, name), name: `${type}_${name}`, type });
        claim(`${type}_${name}`, join(pluginsDir, type, name));
      }
    }
  }
  const plugins = await loadAll(pluginDirs.map((p) => () => loadComponent(root, p.dir, p.name, p.type, undefined, cache)));

  // Subplugins are declared by their parent's manifest, so they are found in a second pass.
  const subpluginDirs: { dir: string; name: string; type: string; parent: string }[] = [];
  for (const plugin of plugins) {
    for (const [subtype, subdir] of Object.entries(plugin.manifest.subplugins ?? {})) {
      const base = join(plugin.dir, subdir);
      if (!isInside(plugin.dir, base)) throw errors.subpluginDir(plugin.versionFile, plugin.name, subtype, subdir);
      if (!(await isDirectory(base))) continue;
      // A symlink may lead out of the component just as '..' does.
      if (!isInside(await realpath(plugin.dir), await realpath(base))) throw errors.subpluginDir(plugin.versionFile, plugin.name, subtype, subdir);
      for (const name of await subdirectories(base)) {
        subpluginDirs.push({ dir: join(base, name), name: `${subtype}_${name}`, type: subtype, parent: plugin.name });
        claim(`${subtype}_${name}`, join(base, name));
      }
    }
  }
  const subplugins = await loadAll(subpluginDirs.map((p) => () => loadComponent(root, p.dir, p.name, p.type, p.parent, cache)));

  const components = new Map<string, Component>([['core', core]]);
  for (const component of [...plugins, ...subplugins]) components.set(component.name, component);
  checkRequirements(components, core);
  // Only a discovery that succeeded is kept: a failure is found again (and reported) next time.
  cache?.save();
  return { root, components, core };
}

/** Runs every load, waits for all of them, then reports the first failure in directory order. */
async function loadAll(loads: readonly (() => Promise<Component>)[]): Promise<Component[]> {
  const results = await Promise.allSettled(loads.map((load) => load()));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<Component>).value);
}

function checkRequirements(components: ReadonlyMap<string, Component>, core: Component): void {
  for (const component of components.values()) {
    const { manifest, versionFile } = component;
    if (manifest.requires !== undefined && manifest.requires > core.manifest.version) {
      throw errors.requiresNewerCore(versionFile, component.name, manifest.requires, core.manifest.version);
    }
    for (const [dependency, needed] of Object.entries(manifest.dependencies ?? {})) {
      const found = components.get(dependency);
      if (!found) throw errors.dependencyMissing(versionFile, component.name, dependency);
      if (found.manifest.version < needed) throw errors.dependencyTooOld(versionFile, component.name, dependency, needed, found.manifest.version);
    }
  }
}
