/**
 * Definitions are strict (issue 11, items 5, 6 and 9): unknown keys are refused with the
 * nearest known key, metadata() results are validated, and an import that never finishes,
 * even an endless synchronous loop, is reported for the file that hangs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finishesLoading } from '../../src/component/import-check.ts';
import { importDefinitionFile } from '../../src/component/load.ts';
import { nearestKey, validateMetadata, validateUpgrade, validateVersion } from '../../src/component/manifest.ts';
import { isOutagelessError, type OutagelessError } from '../../src/errors.ts';

function thrown(run: () => unknown): OutagelessError {
  try {
    run();
  } catch (error) {
    if (isOutagelessError(error)) return error;
    throw error;
  }
  throw new Error('expected a throw');
}

const manifest = validateVersion('version.ts', { kind: 'version', component: 'mod_x', version: 2026020100 }, 'mod_x');
const step = { version: 2026020100, id: 'x_one', outage: 'none', run() {} };

describe('unknown keys', () => {
  it('nearestKey finds typos and nothing for unrelated words', () => {
    expect(nearestKey('maintenence', ['maintenance', 'maturity', 'release'])).toBe('maintenance');
    expect(nearestKey('transation', ['version', 'id', 'transaction', 'phase'])).toBe('transaction');
    expect(nearestKey('colour', ['version', 'id', 'phase'])).toBeUndefined();
  });

  it('version.ts: refused with the field and a suggestion', () => {
    const error = thrown(() => validateVersion('version.ts', { kind: 'version', component: 'mod_x', version: 2026020100, maintenence: { disableable: true } }, 'mod_x'));
    expect(error.code).toBe('OUTAGELESS_ERR_MANIFEST_INVALID');
    expect(error.location.field).toBe('maintenence');
    expect(error.hint).toContain('Did you mean `maintenance`?');
    expect(error.hint).not.toContain('YYYYMMDDXX');
  });

  it('a nested key (maintenance.disablable) is refused too', () => {
    const error = thrown(() => validateVersion('version.ts', { kind: 'version', component: 'mod_x', version: 2026020100, maintenance: { disablable: true } }, 'mod_x'));
    expect(error.location.field).toMatch(/^maintenance\./);
  });

  it('steps and defineUpgrade: refused with the path to the key', () => {
    const inStep = thrown(() => validateUpgrade('db/upgrade.ts', { kind: 'upgrade', steps: [{ ...step, transation: false }] }, manifest));
    expect(inStep.location.field).toBe('steps[0].transation');
    expect(inStep.hint).toContain('`transaction`');
    const top = thrown(() => validateUpgrade('db/upgrade.ts', { kind: 'upgrade', steps: [step], metdata: () => ({}) }, manifest));
    expect(top.location.field).toBe('metdata');
    expect(top.hint).toContain('`metadata`');
  });

  it('a version field keeps the version-format hint', () => {
    const error = thrown(() => validateVersion('version.ts', { kind: 'version', component: 'mod_x', version: 1.5 }, 'mod_x'));
    expect(error.hint).toContain('YYYYMMDDXX');
  });
});

describe('validateMetadata', () => {
  it('accepts what the contract allows', () => {
    expect(validateMetadata('db/upgrade.ts', 'mod_x', { maintenance: 'component', purgeCaches: 'own' })).toEqual({ maintenance: 'component', purgeCaches: 'own' });
    expect(validateMetadata('db/upgrade.ts', 'mod_x', {})).toEqual({});
  });

  it.each([
    [{ maintenance: 'full' }, 'maintenance'],
    [{ purgeCaches: 'everything' }, 'purgeCaches'],
    [{ maintenace: 'none' }, 'maintenace'],
    ['none', '(result)'],
    [null, '(result)'],
    [[], '(result)'],
  ])('refuses %j (field %s)', (value, field) => {
    const error = thrown(() => validateMetadata('db/upgrade.ts', 'mod_x', value));
    expect(error.code).toBe('OUTAGELESS_ERR_METADATA_INVALID');
    expect(error.location).toMatchObject({ file: 'db/upgrade.ts', component: 'mod_x', field });
  });
});

describe('loading with a time limit', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outageless-import-check-'));
    await writeFile(join(dir, 'good.mjs'), 'export default 1;\n');
    await writeFile(join(dir, 'named.mjs'), 'export const upgrade = 1;\n');
    await writeFile(join(dir, 'loop.mjs'), 'for (;;) {}\nexport default 1;\n');
    await writeFile(join(dir, 'pending.mjs'), 'await new Promise(() => {});\nexport default 1;\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an endless loop is reported for its own file; a file queued behind it still loads', async () => {
    const url = (name: string) => pathToFileURL(join(dir, name)).href;
    const started = performance.now();
    const [loop, good] = await Promise.all([finishesLoading(url('loop.mjs'), 500), finishesLoading(url('good.mjs'), 500)]);
    expect(loop).toBe(false);
    expect(good).toBe(true);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('a top-level await that never settles times out with a coded error naming the file', async () => {
    process.env.OUTAGELESS_LOAD_TIMEOUT_MS = '500';
    try {
      const error = await importDefinitionFile(join(dir, 'pending.mjs'), 'mod_x').then(() => undefined, (caught: unknown) => caught);
      expect(isOutagelessError(error, 'OUTAGELESS_ERR_LOAD_TIMEOUT')).toBe(true);
      expect((error as OutagelessError).location.file).toBe(join(dir, 'pending.mjs'));
    } finally {
      delete process.env.OUTAGELESS_LOAD_TIMEOUT_MS;
    }
  });

  it('tells a missing file from one without a default export', async () => {
    expect(await importDefinitionFile(join(dir, 'absent.mjs'))).toEqual({ kind: 'missing' });
    expect(await importDefinitionFile(join(dir, 'named.mjs'))).toEqual({ kind: 'no-default', named: ['upgrade'] });
    expect(await importDefinitionFile(join(dir, 'good.mjs'))).toEqual({ kind: 'loaded', value: 1 });
  });
});
