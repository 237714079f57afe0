import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { Plan } from '../plan/plan.ts';
import { checkDefaults, checkSiteSchema, type DeclaredSchema } from '../schema/site-validation.ts';
import type { SiteCode } from './discover.ts';
import { loadInstall, loadSchema, loadUpgrade } from './files.ts';

/**
 * Loads, and so validates, every definition file a run will need, then checks the whole
 * site's declared schema, so that a bad input fails before the first write (README: "bad
 * input is found before anything is written").
 *
 * - A component being installed has its `db/upgrade.ts` checked as well as its schema and
 *   install file: a broken one would otherwise wait for the next upgrade to surface.
 * - Every component's `db/schema.ts` is loaded, because a foreign key or a table name of a
 *   new component is only right or wrong against the others.
 * - Defaults of the pending components' tables are put to the database in a rolled-back
 *   transaction.
 *
 * @example
 * ```ts
 * const { plan } = await readPlan(db, { code })
 * await preloadSite(db, code, plan) // throws a coded error; nothing was written
 * ```
 */
export async function preloadSite(db: Kysely<any>, code: SiteCode, plan: Plan): Promise<void> {
  const changes = new Map(plan.pending.map((item) => [item.component, item.action === 'install' ? ('install' as const) : ('upgrade' as const)]));
  await Promise.all(
    plan.pending.map(async (item) => {
      const component = item.code!;
      await loadSchema(code, component);
      if (item.action === 'install') {
        await loadInstall(code, component);
        await loadUpgrade(code, component);
      } else if (item.changedFiles.length > 0) {
        await loadUpgrade(code, component);
      }
    }),
  );
  const declared: DeclaredSchema[] = [];
  for (const component of code.components.values()) {
    declared.push({
      component: component.name,
      file: join(component.versionFile, '..', 'db', 'schema.ts'),
      schema: await loadSchema(code, component),
      change: changes.get(component.name) ?? 'none',
    });
  }
  checkSiteSchema(declared);
  await checkDefaults(db, declared.filter((schema) => schema.change !== 'none'));
}
