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
import { createSiteDir, type SiteDir } from '../support/sites.ts';

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

  it('asks for no table when nothing is pending', async () => {
    const { installed } = await installedAs(2);
    const asked: string[][] = [];
    const plan = await buildPlan({ code: await discoverSite(sites.get(2)!.root), installed, appliedSteps: new Map(), readLiveSchema: async (tables) => (asked.push([...tables]), { tables: {} }) });
    expect(plan.pending).toEqual([]);
    expect(asked).toEqual([[]]);
  });
});
