import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Component, SiteCode } from '../component/discover.ts';
import { importOptionalDbFile, loadInstall, loadSchema, loadUpgrade } from '../component/files.ts';
import { loadFormats } from '../migrations/formats.ts';

/**
 * Validation of a component's `db/` files that changed while its version did not move. Such a
 * change is not pending (nothing runs until `version.ts` is raised), but a step above the
 * version or a syntax error in it is a mistake today: waiting for the bump would report it
 * in the middle of the next release. So the plan loads, and thereby checks, every changed
 * file the same way the upgrade that finally runs it would.
 */

/** Loads one `db/` file with the loader that validates it; files no loader owns are skipped. */
const LOADERS: Readonly<Record<string, (code: SiteCode, component: Component) => Promise<unknown>>> = {
  'upgrade.ts': loadUpgrade,
  'schema.ts': loadSchema,
  'install.ts': loadInstall,
  'formats.ts': loadFormats,
  'caches.ts': async (_code, component) => (await import('../caches/definitions.ts')).loadCacheDefinitions(component),
  'tasks.ts': async (code, component) => {
    const { validateTasks } = await import('../jobs/definitions.ts');
    const value = await importOptionalDbFile(code, component, 'tasks.ts');
    return value === undefined ? [] : validateTasks(relative(code.root, join(component.dir, 'db', 'tasks.ts')), component.name, value);
  },
  'events.ts': async (code, component) => {
    const { validateObservers } = await import('../jobs/definitions.ts');
    const value = await importOptionalDbFile(code, component, 'events.ts');
    return value === undefined ? [] : validateObservers(relative(code.root, join(component.dir, 'db', 'events.ts')), component.name, value);
  },
};

/**
 * Checks each file of `changedFiles` (names inside the component's `db/`, as the definitions
 * hash lists them) that is still on disk; throws the coded error of the first bad one. Any
 * change also checks `db/upgrade.ts`, since a helper file in `db/` is only code its steps import.
 *
 * @example
 * ```ts
 * // mod_assign at 2026020100 on disk and in the database, db/upgrade.ts edited since:
 * await validateChangedFiles(code, code.components.get('mod_assign')!, ['upgrade.ts'])
 * // throws OUTAGELESS_ERR_STEP_ABOVE_VERSION for a step at 2026030100
 * ```
 */
export async function validateChangedFiles(code: SiteCode, component: Component, changedFiles: readonly string[]): Promise<void> {
  if (changedFiles.length === 0) return;
  const names = ['upgrade.ts', ...changedFiles.filter((name) => name !== 'upgrade.ts').sort()];
  for (const name of names) {
    const load = LOADERS[name];
    if (load && existsSync(join(component.dir, 'db', name))) await load(code, component);
  }
}
