/**
 * The discovery cache (src/component/discovery-cache.ts), in-process: a second discovery of an
 * unchanged site imports no version.ts, any change that could alter the result makes the
 * changed component load afresh, a corrupt cache is ignored and rewritten, the plan is the same
 * with and without it, and OUTAGELESS_DISCOVERY_CACHE=0 turns it off.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync } from 'node:fs';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { discoverSite, type SiteCode } from '../../src/component/discover.ts';
import { discoveryCachePath } from '../../src/component/discovery-cache.ts';
import { buildPlan } from '../../src/plan/plan.ts';
import { planToJson } from '../../src/cli/format.ts';
import type { InstalledComponent } from '../../src/state/installed.ts';
import { createSiteDir, REPO, type SiteDir } from '../support/sites.ts';

// Every version.ts discovery imports, in order: a cached component is not imported at all.
const { imported } = vi.hoisted(() => ({ imported: [] as string[] }));
vi.mock('../../src/component/load.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/component/load.ts')>();
  return {
    ...actual,
    importDefinitionFile: (file: string, component?: string) => {
      if (file.endsWith('version.ts')) imported.push(component ?? file);
      return actual.importDefinitionFile(file, component);
    },
  };
});

const version = (component: string, v: number, extra = '') =>
  `import { defineVersion } from 'outageless';\nexport default defineVersion({ component: '${component}', version: ${v}, maturity: 'stable'${extra} });\n`;
const schema = (table: string, columns = "id: { type: 'bigint', autoIncrement: true }") =>
  `import { defineSchema } from 'outageless';\nexport default defineSchema({ tables: { ${table}: { columns: { ${columns} }, primaryKey: ['id'] } } });\n`;

const run = promisify(execFile);
let site: SiteDir;

/** A fresh site: core and three local plugins, each with a version and a one-table schema. */
async function writeSite(): Promise<void> {
  site = await createSiteDir();
  await site.write('package.json', `${JSON.stringify({ name: 'cache-site', private: true, type: 'module' })}\n`);
  await site.write('core/version.ts', version('core', 2026010100, ", pluginTypes: ['local']"));
  await site.write('core/db/schema.ts', schema('core_config'));
  for (const name of ['alpha', 'beta', 'gamma']) {
    await site.write(`plugins/local/${name}/version.ts`, version(`local_${name}`, 2026010100));
    await site.write(`plugins/local/${name}/db/schema.ts`, schema(`local_${name}_item`));
  }
  // The cache trusts only files older than itself (see the racy rule): let the clock move on.
  await sleep(20);
}

/** Discovers the site and returns what it imported. */
async function discover(): Promise<{ code: SiteCode; imported: string[] }> {
  imported.length = 0;
  const code = await discoverSite(site.root);
  return { code, imported: [...imported].sort() };
}

/** What a discovery found, without the absolute paths: to compare discoveries. */
function summary(code: SiteCode) {
  return [...code.components.values()].map((c) => ({ name: c.name, type: c.type, parent: c.parent, manifest: { ...c.manifest }, versionFile: c.versionFile, definitions: c.definitions }));
}

/** A warm cache: one discovery that writes it. */
async function warm(): Promise<SiteCode> {
  const { code } = await discover();
  expect(existsSync(discoveryCachePath(site.root))).toBe(true);
  return code;
}

afterEach(async () => {
  delete process.env.OUTAGELESS_DISCOVERY_CACHE;
  await site?.cleanup();
});

describe('discovery cache', () => {
  it('serves an unchanged site without importing any version.ts, with the same result', async () => {
    await writeSite();
    const first = await discover();
    expect(first.imported).toEqual(['core', 'local_alpha', 'local_beta', 'local_gamma']);
    const second = await discover();
    expect(second.imported).toEqual([]);
    expect(summary(second.code)).toEqual(summary(first.code));
    expect(second.code.components.get('local_beta')?.dir).toBe(join(site.root, 'plugins', 'local', 'beta'));
  });

  it('reloads a version.ts edited to the same size, even with its mtime put back', async () => {
    await writeSite();
    await warm();
    const file = join(site.root, 'plugins/local/beta/version.ts');
    const before = await stat(file);
    await site.edit('plugins/local/beta/version.ts', (text) => text.replace('2026010100', '2026010200'));
    expect((await stat(file)).size).toBe(before.size);
    // rsync -t or tar can restore an mtime; the ctime still moves.
    await utimes(file, before.atime, before.mtime);
    const after = await discover();
    expect(after.imported).toEqual(['local_beta']);
    expect(after.code.components.get('local_beta')?.manifest.version).toBe(2026010200);
  });

  it('reloads a component whose db/ file was touched, changed or added', async () => {
    await writeSite();
    const first = await warm();
    const now = new Date();
    await utimes(join(site.root, 'plugins/local/alpha/db/schema.ts'), now, now);
    // Each change is older than the cache the next discovery writes, or the racy rule (file times
    // tick at the kernel's coarse clock) reloads it once more on the discovery after.
    await sleep(20);
    const touched = await discover();
    expect(touched.imported).toEqual(['local_alpha']);
    expect(touched.code.components.get('local_alpha')?.definitions).toEqual(first.components.get('local_alpha')?.definitions);

    await site.write('plugins/local/gamma/db/schema.ts', schema('local_gamma_item', "id: { type: 'bigint', autoIncrement: true }, note: { type: 'text', nullable: true }"));
    await sleep(20);
    const changed = await discover();
    expect(changed.imported).toEqual(['local_gamma']);
    expect(changed.code.components.get('local_gamma')?.definitions.hash).not.toBe(first.components.get('local_gamma')?.definitions.hash);

    await site.write('plugins/local/beta/db/upgrade.ts', `import { defineUpgrade } from 'outageless';\nexport default defineUpgrade({ steps: [] });\n`);
    await sleep(20);
    const added = await discover();
    expect(added.imported).toEqual(['local_beta']);
    expect(Object.keys(added.code.components.get('local_beta')!.definitions.files).sort()).toEqual(['schema.ts', 'upgrade.ts']);
  });

  it('finds a new plugin directory and forgets a removed one', async () => {
    await writeSite();
    await warm();
    await site.write('plugins/local/delta/version.ts', version('local_delta', 2026010100));
    const added = await discover();
    expect(added.imported).toEqual(['local_delta']);
    expect([...added.code.components.keys()].sort()).toEqual(['core', 'local_alpha', 'local_beta', 'local_delta', 'local_gamma']);

    await site.remove('plugins/local/alpha');
    const removed = await discover();
    expect(removed.imported).toEqual([]);
    expect([...removed.code.components.keys()].sort()).toEqual(['core', 'local_beta', 'local_delta', 'local_gamma']);
    const cache = JSON.parse(await readFile(discoveryCachePath(site.root), 'utf8')) as { components: Record<string, unknown> };
    expect(Object.keys(cache.components)).not.toContain('plugins/local/alpha');
  });

  it('ignores a corrupt cache and writes a good one', async () => {
    await writeSite();
    await warm();
    await writeFile(discoveryCachePath(site.root), '{"format":1,"engine":"x","components":{');
    const corrupt = await discover();
    expect(corrupt.imported).toEqual(['core', 'local_alpha', 'local_beta', 'local_gamma']);
    expect(JSON.parse(await readFile(discoveryCachePath(site.root), 'utf8'))).toMatchObject({ format: 1 });

    // Well-formed JSON of the wrong shape is no better than a torn file.
    const cache = JSON.parse(await readFile(discoveryCachePath(site.root), 'utf8')) as { components: Record<string, { manifest: unknown }> };
    cache.components['plugins/local/beta']!.manifest = 'not a manifest';
    await writeFile(discoveryCachePath(site.root), JSON.stringify(cache));
    await sleep(20);
    const wrongShape = await discover();
    expect(wrongShape.imported).toEqual(['local_beta']);
    expect(wrongShape.code.components.get('local_beta')?.manifest.version).toBe(2026010100);
  });

  it('reloads every component when the site package.json changes (its "type" decides how .ts files load)', async () => {
    await writeSite();
    await warm();
    await site.write('package.json', `${JSON.stringify({ name: 'cache-site', private: true, type: 'module', version: '2.0.0' })}\n`);
    expect((await discover()).imported).toEqual(['core', 'local_alpha', 'local_beta', 'local_gamma']);
    // A package.json added inside one component wins for its files: that component reloads.
    await site.write('plugins/local/beta/package.json', `${JSON.stringify({ type: 'module' })}\n`);
    expect((await discover()).imported).toEqual(['local_beta']);
  });

  it('follows the relative imports of version.ts', async () => {
    await writeSite();
    await site.write('plugins/local/beta/release.ts', 'export const VERSION = 2026010100;\n');
    await site.write('plugins/local/beta/version.ts', `import { defineVersion } from 'outageless';\nimport { VERSION } from './release.ts';\nexport default defineVersion({ component: 'local_beta', version: VERSION });\n`);
    await sleep(20);
    await warm();
    expect((await discover()).imported).toEqual([]);
    const cache = JSON.parse(await readFile(discoveryCachePath(site.root), 'utf8')) as { components: Record<string, { files: Record<string, string> }> };
    expect(Object.keys(cache.components['plugins/local/beta']!.files)).toContain(join('plugins', 'local', 'beta', 'release.ts'));

    await site.write('plugins/local/beta/release.ts', 'export const VERSION = 2026010300;\n');
    expect((await discover()).imported).toEqual(['local_beta']);
    // This process keeps release.ts in its module cache (load.ts re-imports only the version.ts it
    // is given), so the new value is checked where it counts: a fresh process, as the CLI is.
    await site.write('plugins/local/beta/release.ts', 'export const VERSION = 2026010400;\n');
    const { stdout } = await run(process.execPath, [
      '--input-type=module', '-e',
      `const { discoverSite } = await import(${JSON.stringify(join(REPO, 'src', 'component', 'discover.ts'))}); const code = await discoverSite(${JSON.stringify(site.root)}); console.log(code.components.get('local_beta').manifest.version);`,
    ]);
    expect(stdout.trim()).toBe('2026010400');
  });

  it('always imports a version.ts that imports anything but outageless and relative files', async () => {
    await writeSite();
    // A side effect at import: each import appends a line.
    const log = join(site.root, 'imports.log');
    await site.write('plugins/local/gamma/version.ts', `import { appendFileSync } from 'node:fs';\nimport { defineVersion } from 'outageless';\nappendFileSync(${JSON.stringify(log)}, 'imported\\n');\nexport default defineVersion({ component: 'local_gamma', version: 2026010100 });\n`);
    await sleep(20);
    await warm();
    const second = await discover();
    expect(second.imported).toEqual(['local_gamma']);
    expect((await readFile(log, 'utf8')).split('\n').filter(Boolean)).toHaveLength(2);
  });

  it('is off with OUTAGELESS_DISCOVERY_CACHE=0: every discovery imports every version.ts and writes nothing', async () => {
    await writeSite();
    process.env.OUTAGELESS_DISCOVERY_CACHE = '0';
    expect((await discover()).imported).toHaveLength(4);
    expect((await discover()).imported).toHaveLength(4);
    expect(existsSync(discoveryCachePath(site.root))).toBe(false);
  });
});

describe('the plan with and without the cache', () => {
  let release: SiteDir;
  beforeAll(async () => {
    release = await createSiteDir(3);
    await sleep(20);
  });
  afterAll(() => release.cleanup());

  it('is the same plan JSON', async () => {
    // Installed as release 2 of the example; release 3 on disk has db/ changes, new components and steps.
    const installedRelease = await createSiteDir(2);
    let installed: Map<string, InstalledComponent>;
    try {
      process.env.OUTAGELESS_DISCOVERY_CACHE = '0';
      const old = await discoverSite(installedRelease.root);
      installed = new Map([...old.components.values()].map((c) => [c.name, {
        component: c.name, version: c.manifest.version, release: c.manifest.release ?? null, codeIncrement: c.manifest.codeIncrement ?? null,
        definitionsHash: c.definitions.hash, definitions: c.definitions.files, updatedAt: new Date(0),
      }]));
    } finally {
      await installedRelease.cleanup();
    }
    const plan = async () => planToJson(await buildPlan({ code: await discoverSite(release.root), installed, appliedSteps: new Map() }));

    const uncached = await plan();
    delete process.env.OUTAGELESS_DISCOVERY_CACHE;
    imported.length = 0;
    const cold = await plan();
    expect(imported.length).toBeGreaterThan(0);
    imported.length = 0;
    const warmPlan = await plan();
    expect(imported).toEqual([]);
    expect(JSON.stringify(cold)).toBe(JSON.stringify(uncached));
    expect(JSON.stringify(warmPlan)).toBe(JSON.stringify(uncached));
  });
});
