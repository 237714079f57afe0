import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SiteCode } from '../component/discover.ts';
import { upgradeOrder } from '../plan/order.ts';
import { errors } from '../errors.ts';
import type { RuntimeModule } from './definitions.ts';

/**
 * Imports a component's runtime `index.ts` and returns the whole module: the default export
 * (its routes) and the named `tasks` and `observers` handlers.
 *
 * The URL carries the file's size and mtime exactly like `importDefault` in
 * component/load.ts, so an edited file is reloaded and both loaders share one module
 * instance. (Candidate to move next to `importDefault` as `importModule`.)
 */
export async function importRuntimeModule(file: string, component?: string): Promise<RuntimeModule> {
  try {
    const info = await stat(file);
    const url = `${pathToFileURL(file).href}?v=${info.size}-${info.mtimeMs}`;
    return (await import(url)) as RuntimeModule;
  } catch (error) {
    throw errors.loadFailed(file, error, component);
  }
}

/** Loads every component's `index.ts` (those that have one), for a front that mounts no routes. */
export async function loadRuntimeModules(code: SiteCode): Promise<Map<string, RuntimeModule>> {
  const modules = new Map<string, RuntimeModule>();
  for (const component of upgradeOrder(code)) {
    const file = join(component.dir, 'index.ts');
    if (existsSync(file)) modules.set(component.name, await importRuntimeModule(file, component.name));
  }
  return modules;
}
