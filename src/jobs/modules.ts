import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteCode } from '../component/discover.ts';
import { importModule } from '../component/load.ts';
import { upgradeOrder } from '../plan/order.ts';
import type { RuntimeModule } from './definitions.ts';

/** Imports a component's runtime `index.ts`: its routes (default) and `tasks`/`observers` handlers. */
export async function importRuntimeModule(file: string, component?: string): Promise<RuntimeModule> {
  return (await importModule(file, component)) as RuntimeModule;
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
