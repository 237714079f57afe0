/**
 * Classification of a `db/formats.ts` change (issue 9): vouched for by the format rules, so a
 * formats-only change needs no step and is class `none`; bad input in it is a coded error of
 * the plan. Code only, no database: the installed state is the first release's own hashes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { discoverSite } from '../../src/component/discover.ts';
import { isOutagelessError } from '../../src/errors.ts';
import { buildPlan } from '../../src/plan/plan.ts';
import type { InstalledComponent } from '../../src/state/installed.ts';
import { createSiteDir, writeBareCore, type SiteDir } from '../support/sites.ts';

const V1 = 2026010100;
const V2 = 2026020100;
const version = (v: number) => `import { defineVersion } from 'outageless';\nexport default defineVersion({ component: 'local_fmt', version: ${v}, requires: ${V1}, maturity: 'stable' });\n`;
const formats = (read: number, write: number) => `import { defineFormats } from 'outageless';
export default defineFormats({ item: { table: 'local_fmt_item', versionColumn: 'format_version', read: ${read}, write: ${write} } });
`;
const SCHEMA = `import { defineSchema } from 'outageless';
export default defineSchema({ tables: { local_fmt_item: { columns: { id: { type: 'bigint', autoIncrement: true }, body: { type: 'text' }, format_version: { type: 'integer', default: 1 } }, primaryKey: ['id'] } } });
`;

describe('plan: db/formats.ts changes', () => {
  let site: SiteDir | undefined;
  afterEach(async () => {
    await site?.cleanup();
    site = undefined;
  });

  async function installedRelease1(): Promise<Map<string, InstalledComponent>> {
    site = await createSiteDir();
    await writeBareCore(site, V1);
    await site.write('plugins/local/fmt/version.ts', version(V1));
    await site.write('plugins/local/fmt/db/schema.ts', SCHEMA);
    await site.write('plugins/local/fmt/db/formats.ts', formats(1, 1));
    const code = await discoverSite(site.root);
    return new Map([...code.components.values()].map((component) => [component.name, {
      component: component.name, version: component.manifest.version, release: null, codeIncrement: null,
      definitionsHash: component.definitions.hash, definitions: component.definitions.files, updatedAt: new Date(),
    }]));
  }

  it('a raised write alone is class none, vouched for by the format rules', async () => {
    const installed = await installedRelease1();
    await site!.write('plugins/local/fmt/version.ts', version(V2));
    await site!.write('plugins/local/fmt/db/formats.ts', formats(1, 2));
    const plan = await buildPlan({ code: await discoverSite(site!.root), installed, appliedSteps: new Map() });
    const item = plan.pending.find((candidate) => candidate.component === 'local_fmt')!;
    expect(item.changedFiles).toEqual(['formats.ts']);
    expect(item.outage).toBe('none');
    expect(item.reasons.join('\n')).toContain('db/formats.ts changed: vouched for by the format rules');
    expect(plan.maintenanceRequired).toBe(false);
  });

  it('formats.ts with another db/ file and no step is still class site', async () => {
    const installed = await installedRelease1();
    await site!.write('plugins/local/fmt/version.ts', version(V2));
    await site!.write('plugins/local/fmt/db/formats.ts', formats(1, 2));
    await site!.write('plugins/local/fmt/db/schema.ts', SCHEMA.replace("body: { type: 'text' }", "body: { type: 'text' }, extra: { type: 'text', nullable: true }"));
    const plan = await buildPlan({ code: await discoverSite(site!.root), installed, appliedSteps: new Map() });
    expect(plan.pending.find((candidate) => candidate.component === 'local_fmt')!.outage).toBe('site');
  });

  it('read above write in the changed file is a coded error of the plan', async () => {
    const installed = await installedRelease1();
    await site!.write('plugins/local/fmt/version.ts', version(V2));
    await site!.write('plugins/local/fmt/db/formats.ts', formats(3, 2));
    const error = await buildPlan({ code: await discoverSite(site!.root), installed, appliedSteps: new Map() }).catch((caught: unknown) => caught);
    expect(isOutagelessError(error, 'OUTAGELESS_ERR_FORMAT_READ_ABOVE_WRITE')).toBe(true);
  });
});
