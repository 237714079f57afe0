/**
 * The import check's verdict cache (src/component/import-check-cache.ts), in-process: a db/
 * file that finished loading is not checked in the worker again while it and what it imports
 * are unchanged; an edit of the file, of a file it imports, or of its package.json scope makes
 * it checked again; a file naming `process` and OUTAGELESS_DISCOVERY_CACHE=0 are always checked.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { importDefinitionFile } from '../../src/component/load.ts';
import { importCheckCachePath } from '../../src/component/import-check-cache.ts';
import { createSiteDir, type SiteDir } from '../support/sites.ts';

// Every file sent to the import check's worker.
const { checked } = vi.hoisted(() => ({ checked: [] as string[] }));
vi.mock('../../src/component/import-check.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/component/import-check.ts')>();
  return {
    ...actual,
    finishesLoading: (url: string, limitMs: number) => {
      checked.push(new URL(url).pathname.split('/').slice(-2).join('/'));
      return actual.finishesLoading(url, limitMs);
    },
  };
});

const upgrade = (extra = '') =>
  `import { defineUpgrade } from 'outageless';\nimport { column } from './helper.ts';\nexport default defineUpgrade({ steps: [] ${extra}});\nexport const used = column;\n`;

let site: SiteDir;
const file = () => join(site.root, 'plugins/local/alpha/db/upgrade.ts');

/** Loads db/upgrade.ts as the plan does and returns the files the worker checked for it. */
async function load(): Promise<string[]> {
  checked.length = 0;
  const found = await importDefinitionFile(file(), 'local_alpha', site.root);
  expect(found.kind).toBe('loaded');
  // The verdicts are written once the loads of a tick are done; the racy rule then needs the clock to move on.
  await new Promise((resolve) => setImmediate(resolve));
  await sleep(20);
  return [...checked];
}

beforeEach(async () => {
  site = await createSiteDir();
  await site.write('package.json', `${JSON.stringify({ name: 'verdict-site', private: true, type: 'module' })}\n`);
  await site.write('plugins/local/alpha/db/helper.ts', `export const column = 'name';\n`);
  await site.write('plugins/local/alpha/db/upgrade.ts', upgrade());
  await sleep(20);
});

afterEach(async () => {
  delete process.env.OUTAGELESS_DISCOVERY_CACHE;
  await site.cleanup();
});

describe('import check verdict cache', () => {
  it('checks a file once, then not again while nothing it was read from changed', async () => {
    expect(await load()).toEqual(['db/upgrade.ts']);
    expect(existsSync(importCheckCachePath(site.root))).toBe(true);
    expect(await load()).toEqual([]);
  });

  it('checks the file again after it is edited', async () => {
    await load();
    await site.write('plugins/local/alpha/db/upgrade.ts', upgrade(', '));
    await sleep(20);
    expect(await load()).toEqual(['db/upgrade.ts']);
    expect(await load()).toEqual([]);
  });

  it('checks the file again after a file it imports is edited', async () => {
    await load();
    await site.write('plugins/local/alpha/db/helper.ts', `export const column = 'title';\n`);
    await sleep(20);
    expect(await load()).toEqual(['db/upgrade.ts']);
  });

  it('checks the file again after a package.json appears in its scope', async () => {
    await load();
    await site.write('plugins/local/alpha/package.json', `${JSON.stringify({ type: 'module' })}\n`);
    await sleep(20);
    expect(await load()).toEqual(['db/upgrade.ts']);
  });

  it('always checks a file that names a global the stamps cannot cover (process)', async () => {
    await site.write('plugins/local/alpha/db/helper.ts', `export const column = process.env.COLUMN ?? 'name';\n`);
    await sleep(20);
    expect(await load()).toEqual(['db/upgrade.ts']);
    expect(await load()).toEqual(['db/upgrade.ts']);
  });

  it('is off with OUTAGELESS_DISCOVERY_CACHE=0', async () => {
    process.env.OUTAGELESS_DISCOVERY_CACHE = '0';
    expect(await load()).toEqual(['db/upgrade.ts']);
    expect(await load()).toEqual(['db/upgrade.ts']);
    expect(existsSync(importCheckCachePath(site.root))).toBe(false);
  });
});
