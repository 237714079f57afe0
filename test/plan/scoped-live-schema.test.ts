/**
 * The plan reads the live schema of only the tables its steps declared `none` touch
 * (`readLiveSchema`, as readPlan passes it): over each upgrade of the example site
 * (release N installed, release N+1 on disk) the plan is the same as with the whole schema,
 * and nothing is read when no such step is pending.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverSite, type SiteCode } from '../../src/component/discover.ts';
import { loadSchema } from '../../src/component/files.ts';
import { buildPlan } from '../../src/plan/plan.ts';
import { planToJson } from '../../src/cli/format.ts';
import type { SchemaShape } from '../../src/schema/online-safety.ts';
import type { InstalledComponent } from '../../src/state/installed.ts';
import { createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';

const RELEASES = [1, 2, 3, 4, 5, 6, 7, 8];
const sites = new Map<number, SiteDir>();

beforeAll(async () => {
  process.env.OUTAGELESS_DISCOVERY_CACHE = '0';
  for (const release of RELEASES) sites.set(release, await createSiteDir(release));
});
afterAll(async () => {
  delete process.env.OUTAGELESS_DISCOVERY_CACHE;
  await Promise.all([...sites.values()].map((site) => site.cleanup()));
});

/** The installed state and the live schema of release `n`, as its install would leave them, plus an unrelated table. */
async function installedAs(n: number): Promise<{ installed: Map<string, InstalledComponent>; schema: SchemaShape }> {
  const code: SiteCode = await discoverSite(sites.get(n)!.root);
  const tables: Record<string, { columns: { name: string; type: string; nullable: boolean }[] }> = { unrelated_table: { columns: [{ name: 'id', type: 'bigint', nullable: false }] } };
  const installed = new Map<string, InstalledComponent>();
  for (const component of code.components.values()) {
    installed.set(component.name, {
      component: component.name, version: component.manifest.version, release: component.manifest.release ?? null, codeIncrement: component.manifest.codeIncrement ?? null,
      definitionsHash: component.definitions.hash, definitions: component.definitions.files, updatedAt: new Date(0),
    });
    for (const [table, definition] of Object.entries((await loadSchema(code, component)).tables)) {
      tables[table] = { columns: Object.entries(definition.columns).map(([name, column]) => ({ name, type: String(column.type), nullable: column.nullable === true })) };
    }
  }
  return { installed, schema: { tables } };
}

/** The plan JSON, or the error's code and message. */
async function outcome(plan: () => ReturnType<typeof buildPlan>): Promise<unknown> {
  try {
    return planToJson(await plan());
  } catch (error) {
    return { error: (error as { code?: string }).code, message: (error as Error).message };
  }
}

describe('plan: live schema of the touched tables only', () => {
  it.each(RELEASES.slice(0, -1))('release %i -> next: the same plan as with the whole schema, reading only tables steps declared none touch', async (n) => {
    const { installed, schema } = await installedAs(n);
    const next = sites.get(n + 1)!.root;
    const full = await outcome(async () => buildPlan({ code: await discoverSite(next), installed, appliedSteps: new Map(), liveSchema: schema }));
    const asked: string[][] = [];
    const scoped = await outcome(async () => buildPlan({
      code: await discoverSite(next),
      installed,
      appliedSteps: new Map(),
      readLiveSchema: async (tables) => {
        asked.push([...tables]);
        return { tables: Object.fromEntries(tables.flatMap((table) => (schema.tables[table] ? [[table, schema.tables[table]]] : []))) };
      },
    }));
    expect(JSON.stringify(scoped)).toBe(JSON.stringify(full));
    if ((full as { error?: string }).error === undefined) {
      expect(asked).toHaveLength(1);
      expect(asked[0]).not.toContain('unrelated_table');
    }
  });

  it('a step declared none that renames a column the installed release reads is raised, as with the whole schema', async () => {
    const site = await createSiteDir();
    try {
      await site.write('package.json', `${JSON.stringify({ name: 'scoped', private: true, type: 'module' })}\n`);
      await writeBareCore(site, 2026010100);
      const version = (v: number) => `import { defineVersion } from 'outageless';\nexport default defineVersion({ component: 'local_alpha', version: ${v}, maturity: 'stable' });\n`;
      await site.write('plugins/local/alpha/version.ts', version(2026010100));
      await site.write('plugins/local/alpha/db/upgrade.ts', `import { defineUpgrade } from 'outageless';\nexport default defineUpgrade({ steps: [] });\n`);
      const before = await discoverSite(site.root);
      const installed = new Map<string, InstalledComponent>([...before.components.values()].map((c) => [c.name, {
        component: c.name, version: c.manifest.version, release: null, codeIncrement: c.manifest.codeIncrement ?? null,
        definitionsHash: c.definitions.hash, definitions: c.definitions.files, updatedAt: new Date(0),
      }]));
      await site.write('plugins/local/alpha/version.ts', version(2026010200));
      await site.write('plugins/local/alpha/db/upgrade.ts', `import { defineUpgrade } from 'outageless';
export default defineUpgrade({ steps: [
  { version: 2026010200, id: 'rename', outage: 'none', async run({ schema }) { await schema.renameColumn('alpha_item', 'name', 'title'); await schema.dropColumn('alpha_new', 'x'); } },
] });
`);
      const schema: SchemaShape = { tables: { alpha_item: { columns: [{ name: 'id', type: 'bigint', nullable: false }, { name: 'name', type: 'text', nullable: true }] }, unrelated_table: { columns: [] } } };
      const full = planToJson(await buildPlan({ code: await discoverSite(site.root), installed, appliedSteps: new Map(), liveSchema: schema }));
      const asked: string[][] = [];
      const scoped = planToJson(await buildPlan({
        code: await discoverSite(site.root), installed, appliedSteps: new Map(),
        readLiveSchema: async (tables) => (asked.push([...tables]), { tables: Object.fromEntries(tables.flatMap((table) => (schema.tables[table] ? [[table, schema.tables[table]]] : []))) }),
      }));
      expect(asked).toEqual([['alpha_item', 'alpha_new']]);
      expect(JSON.stringify(scoped)).toBe(JSON.stringify(full));
      // Breaking on the table the old code reads; the drop on a table it does not have is safe.
      expect(scoped.outage).toBe('site');
      expect(JSON.stringify(scoped.components)).toContain('breaking');
      expect(JSON.stringify(scoped.components)).not.toContain('alpha_new');
    } finally {
      await site.cleanup();
    }
  });

  it('asks for no table when nothing is pending', async () => {
    const { installed } = await installedAs(2);
    const asked: string[][] = [];
    const plan = await buildPlan({ code: await discoverSite(sites.get(2)!.root), installed, appliedSteps: new Map(), readLiveSchema: async (tables) => (asked.push([...tables]), { tables: {} }) });
    expect(plan.pending).toEqual([]);
    expect(asked).toEqual([[]]);
  });
});
