import { join, relative } from 'node:path';
import { errors, isOutagelessError } from '../errors.ts';
import type { SchemaDefinition } from '../schema/definition.ts';
import { validateSchema } from '../schema/ddl.ts';
import type { InstallDefinition, UpgradeDefinition } from './definitions.ts';
import type { Component, SiteCode } from './discover.ts';
import { assertStepImports } from './import-lint.ts';
import { importDefinitionFile, importOptional, loadTimeoutMs, type DefinitionFile } from './load.ts';
import { validateUpgrade } from './manifest.ts';

/**
 * Lazy loaders for a component's `db/` files. Planning loads `db/upgrade.ts` only for
 * components whose `db/` changed, so `--is-pending` on a large site imports version files
 * and nothing else.
 */

const EMPTY_UPGRADE: UpgradeDefinition = Object.freeze({ kind: 'upgrade', steps: [] });
const EMPTY_SCHEMA: SchemaDefinition = Object.freeze({ kind: 'schema', tables: {} });

const cache = new WeakMap<Component, Map<string, Promise<unknown>>>();

function once<T>(component: Component, key: string, load: () => Promise<T>): Promise<T> {
  let entries = cache.get(component);
  if (!entries) cache.set(component, (entries = new Map()));
  let entry = entries.get(key) as Promise<T> | undefined;
  if (!entry) entries.set(key, (entry = load()));
  return entry;
}

function display(code: SiteCode, component: Component, file: string): string {
  return join(component.versionFile, '..', 'db', file);
}

/** What each definition file must default-export, for the "no default export" error. */
const EXPECTED: Readonly<Record<string, string>> = {
  'upgrade.ts': 'defineUpgrade({ steps: [...] })',
  'schema.ts': 'defineSchema({ tables: {...} })',
  'install.ts': 'defineInstall(async (ctx) => {...})',
};

/**
 * Imports `db/<file>`: undefined when the file does not exist. A file that exists without a
 * default export is an error, not "nothing declared". Failures name the file relative to the
 * site root.
 */
async function importDbFile(code: SiteCode, component: Component, file: string): Promise<unknown> {
  const shown = display(code, component, file);
  let found: DefinitionFile;
  try {
    found = await importDefinitionFile(join(component.dir, 'db', file), component.name, code.root);
  } catch (error) {
    if (isOutagelessError(error, errors.loadFailed.code)) throw errors.loadFailed(shown, error.cause, component.name);
    if (isOutagelessError(error, errors.loadTimeout.code)) throw errors.loadTimeout(shown, loadTimeoutMs(), component.name);
    throw error;
  }
  if (found.kind === 'no-default') throw errors.noDefaultExport(shown, component.name, EXPECTED[file] ?? 'its definition', found.named);
  return found.kind === 'loaded' ? found.value : undefined;
}

/**
 * The default export of `db/<name>`, or undefined when the file or its default export is
 * missing (tasks, events: "nothing declared"); a failing import names the file relative to the
 * site root.
 *
 * @example
 * ```ts
 * const raw = await importOptionalDbFile(code, component, 'tasks.ts')
 * if (raw !== undefined) validateTasks(file, component.name, raw)
 * ```
 */
export async function importOptionalDbFile(code: SiteCode, component: Component, name: string): Promise<unknown> {
  const file = join(component.dir, 'db', name);
  try {
    return await importOptional(file, component.name);
  } catch (error) {
    if (isOutagelessError(error, errors.loadFailed.code)) throw errors.loadFailed(relative(code.root, file), error.cause, component.name);
    throw error;
  }
}

/** `db/upgrade.ts`, validated; a component without one has no steps. */
export function loadUpgrade(code: SiteCode, component: Component): Promise<UpgradeDefinition> {
  return once(component, 'upgrade', async () => {
    const file = display(code, component, 'upgrade.ts');
    // Checked before the import: a step that reaches into plugin code never runs a line of it.
    await assertStepImports(code, component, 'upgrade.ts');
    const value = await importDbFile(code, component, 'upgrade.ts');
    return value === undefined ? EMPTY_UPGRADE : validateUpgrade(file, value, component.manifest);
  });
}

/** `db/schema.ts`, validated; a component without one owns no tables. */
export function loadSchema(code: SiteCode, component: Component): Promise<SchemaDefinition> {
  return once(component, 'schema', async () => {
    const file = display(code, component, 'schema.ts');
    const value = await importDbFile(code, component, 'schema.ts');
    return value === undefined ? EMPTY_SCHEMA : validateSchema(file, component.name, value);
  });
}

/** `db/install.ts`, if the component has one. */
export function loadInstall(code: SiteCode, component: Component): Promise<InstallDefinition | undefined> {
  return once(component, 'install', async () => {
    const file = display(code, component, 'install.ts');
    await assertStepImports(code, component, 'install.ts');
    const value = await importDbFile(code, component, 'install.ts');
    if (value === undefined) return undefined;
    const install = value as Partial<InstallDefinition>;
    if (install.kind !== 'install' || typeof install.run !== 'function') {
      throw errors.manifestInvalid(file, 'default', 'default export must come from defineInstall(async (ctx) => {...})', component.name);
    }
    return value as InstallDefinition;
  });
}
