/**
 * `outageless init [dir]` (issue 10 item 3): what the scaffold holds, that its components are a
 * valid site (discovered, versions YYYYMMDDXX, steps lint-clean), how it adds to a package.json
 * and .gitignore that are there, and the refusals that write nothing: a directory that holds a
 * site, a package.json of another `type`, a package.json that is not JSON, a file in the way.
 * In-process except the two runs of the real binary where the exit code and `--json` are the
 * point. Installing, serving and type-checking the scaffold are in test/packaging/pack-smoke.test.ts.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSite } from '../../src/cli/init-command.ts';
import { initErrors } from '../../src/cli/init-errors.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { lintStepImports } from '../../src/component/import-lint.ts';
import { isOutagelessError } from '../../src/errors.ts';
import { cli, createSiteDir, REPO } from '../support/sites.ts';

let scratch: string;
let count = 0;
const NOW = new Date('2026-12-02T05:00:00Z');
const ownVersion = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'outageless-init-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function freshDir(files: Record<string, string> = {}): Promise<string> {
  const dir = join(scratch, `site-${(count += 1)}`);
  await mkdir(dir, { recursive: true });
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

/** Every file under `dir` with its text: what "nothing was written" is checked against. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files[relative(dir, join(entry.parentPath, entry.name))] = await readFile(join(entry.parentPath, entry.name), 'utf8');
  }
  return files;
}

async function refusal(dir: string, options: { force?: boolean } = {}): Promise<unknown> {
  return initSite(dir, { now: NOW, ...options }).then(
    () => undefined,
    (error: unknown) => error,
  );
}

const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;

describe('the scaffold', () => {
  it('writes package.json with "type": "module", core, one plugin with a table, a step, data and a route, tsconfig and .gitignore', async () => {
    const dir = join(scratch, 'My Site');
    const result = await initSite(dir, { now: NOW });
    expect(result.files.map((file) => file.path).sort()).toEqual(
      [
        '.gitignore', 'package.json', 'tsconfig.json', 'core/version.ts', 'core/index.ts',
        'plugins/local/hello/version.ts', 'plugins/local/hello/index.ts',
        'plugins/local/hello/db/schema.ts', 'plugins/local/hello/db/upgrade.ts', 'plugins/local/hello/db/install.ts',
      ].sort(),
    );
    expect(result.files.every((file) => file.action === 'created')).toBe(true);
    expect(result.installed).toBe(false);

    const manifest = await readJson(join(dir, 'package.json'));
    expect(manifest).toMatchObject({
      name: 'my-site',
      private: true,
      type: 'module',
      engines: { node: '>=22.12' },
      dependencies: { outageless: `^${ownVersion}` },
      scripts: { upgrade: 'outageless upgrade', serve: 'outageless serve' },
    });
    expect(manifest.dependencies.fastify).toBe((await readJson(join(REPO, 'package.json'))).dependencies.fastify);
    expect((await readFile(join(dir, '.gitignore'), 'utf8')).split('\n')).toContain('.outageless/');
    const route = await readFile(join(dir, 'plugins/local/hello/index.ts'), 'utf8');
    expect(route).toContain('app.outagelessDatabase.kysely<Tables>()');
    expect(await readFile(join(dir, 'plugins/local/hello/db/upgrade.ts'), 'utf8')).toContain("outage: 'none'");
  });

  it('is a valid site: discovered with YYYYMMDDXX versions of the day, and its step files pass lint', async () => {
    // A symlinked outageless, as an installed app resolves it.
    const site = await createSiteDir();
    try {
      await initSite(site.root, { now: NOW });
      const code = await discoverSite(site.root);
      expect([...code.components.keys()].sort()).toEqual(['core', 'local_hello']);
      for (const component of code.components.values()) expect(component.manifest.version).toBe(2026120200);
      for (const component of code.components.values()) {
        const lint = await lintStepImports(code, component);
        expect(lint.findings).toEqual([]);
        if (component.name === 'local_hello') expect(lint.files).toEqual(expect.arrayContaining(['plugins/local/hello/db/upgrade.ts', 'plugins/local/hello/db/install.ts']));
      }
    } finally {
      await site.cleanup();
    }
  });

  it('adds to a package.json of "type": "module" and a .gitignore that are there, keeping what they say', async () => {
    const dir = await freshDir({
      'package.json': JSON.stringify({ name: 'lms', type: 'module', scripts: { serve: 'node server.ts' }, dependencies: { fastify: '^5.0.0' }, devDependencies: { outageless: 'file:../outageless' } }),
      '.gitignore': 'coverage',
    });
    const result = await initSite(dir, { now: NOW });
    expect(result.files).toContainEqual({ path: 'package.json', action: 'updated' });
    expect(result.files).toContainEqual({ path: '.gitignore', action: 'updated' });
    const manifest = await readJson(join(dir, 'package.json'));
    expect(manifest.name).toBe('lms');
    expect(manifest.scripts.serve).toBe('node server.ts');
    expect(manifest.scripts.upgrade).toBe('outageless upgrade');
    expect(manifest.dependencies).toEqual({ fastify: '^5.0.0' });
    expect(manifest.devDependencies).toEqual({ outageless: 'file:../outageless' });
    expect(await readFile(join(dir, '.gitignore'), 'utf8')).toBe('coverage\nnode_modules/\n.outageless/\n');
    // Run again over its own result: a site is there now.
    expect(isOutagelessError(await refusal(dir), initErrors.siteExists.code)).toBe(true);
  });

  it('keeps a tsconfig.json that is there (no --force)', async () => {
    const dir = await freshDir({ 'tsconfig.json': '{"compilerOptions":{}}' });
    const result = await initSite(dir, { now: NOW });
    expect(result.files).toContainEqual({ path: 'tsconfig.json', action: 'kept' });
    expect(await readFile(join(dir, 'tsconfig.json'), 'utf8')).toBe('{"compilerOptions":{}}');
  });
});

describe('refusals write nothing', () => {
  const cases: readonly { readonly name: string; readonly files: Record<string, string>; readonly code: string; readonly field?: string }[] = [
    { name: 'a directory with core/', files: { 'core/version.ts': 'export default 1;\n' }, code: initErrors.siteExists.code },
    { name: 'a directory with plugins/', files: { 'plugins/mod/quiz/version.ts': 'export default 1;\n' }, code: initErrors.siteExists.code },
    { name: 'a package.json of "type": "commonjs"', files: { 'package.json': '{ "name": "old", "type": "commonjs" }\n' }, code: initErrors.packageType.code, field: 'type' },
    { name: 'a package.json that is not JSON', files: { 'package.json': '{ "name": ' }, code: initErrors.packageJsonInvalid.code },
    { name: 'a package.json that is an array', files: { 'package.json': '[]' }, code: initErrors.packageJsonInvalid.code },
  ];
  for (const { name, files, code, field } of cases) {
    it(`${name}: ${code}`, async () => {
      const dir = await freshDir(files);
      const before = await snapshot(dir);
      const error = await refusal(dir);
      expect(isOutagelessError(error, code), String(error)).toBe(true);
      if (field) expect((error as { location: { field?: string } }).location.field).toBe(field);
      expect((error as Error).message).toContain('nothing was written');
      expect(await snapshot(dir)).toEqual(before);
    });
  }

  it('a file where the directory should be: OUTAGELESS_ERR_INIT_NOT_A_DIRECTORY', async () => {
    const dir = await freshDir({ 'site.txt': 'x' });
    expect(isOutagelessError(await refusal(join(dir, 'site.txt')), initErrors.notADirectory.code)).toBe(true);
    expect(await snapshot(dir)).toEqual({ 'site.txt': 'x' });
  });

  it('a file it cannot write is OUTAGELESS_ERR_INIT_WRITE_FAILED naming the file, not a stack trace', async () => {
    const dir = await freshDir({});
    // A directory where core/version.ts goes: writeFile fails with EISDIR.
    await mkdir(join(dir, 'core', 'version.ts'), { recursive: true });
    const error = await refusal(dir, { force: true });
    expect(isOutagelessError(error, initErrors.writeFailed.code), String(error)).toBe(true);
    expect((error as { location?: { file?: string } }).location?.file).toBe('core/version.ts');
  });

  it('a package.json that is not JSON is refused even with --force', async () => {
    const dir = await freshDir({ 'package.json': '{ "name": ' });
    expect(isOutagelessError(await refusal(dir, { force: true }), initErrors.packageJsonInvalid.code)).toBe(true);
    expect(await snapshot(dir)).toEqual({ 'package.json': '{ "name": ' });
  });
});

describe('--force', () => {
  it('writes the scaffold over a site and sets "type": "module"; files it does not write stay', async () => {
    const dir = await freshDir({
      'package.json': JSON.stringify({ name: 'old', type: 'commonjs', dependencies: { outageless: '0.0.9' } }),
      'core/version.ts': 'old core',
      'core/db/schema.ts': 'old schema',
    });
    const result = await initSite(dir, { now: NOW, force: true });
    expect(result.files).toContainEqual({ path: 'core/version.ts', action: 'overwritten' });
    expect(result.files).toContainEqual({ path: 'core/index.ts', action: 'created' });
    const manifest = await readJson(join(dir, 'package.json'));
    expect(manifest.type).toBe('module');
    expect(manifest.dependencies.outageless).toBe('0.0.9');
    expect(await readFile(join(dir, 'core/version.ts'), 'utf8')).toContain('version: 2026120200');
    expect(await readFile(join(dir, 'core/db/schema.ts'), 'utf8')).toBe('old schema');
  });
});

describe('the binary', () => {
  it('init <dir> --json exits 0 and lists the files written with the next commands', async () => {
    const dir = join(scratch, 'cli-site');
    const result = await cli(['init', dir, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { root: string; files: { path: string; action: string }[]; next: string[] };
    expect(report.root).toBe(dir);
    expect(report.files).toHaveLength(10);
    expect(report.files).toContainEqual({ path: 'plugins/local/hello/db/schema.ts', action: 'created' });
    expect(report.next).toEqual(expect.arrayContaining(['npm install', 'npx outageless upgrade']));
  });

  it('a directory that holds a site: exit 1, the coded error as JSON, nothing written', async () => {
    const dir = await freshDir({ 'plugins/local/x/version.ts': 'keep me' });
    const result = await cli(['init', dir, '--json']);
    expect(result.code).toBe(1);
    const { error } = JSON.parse(result.stdout) as { error: { code: string; file: string; hint: string } };
    expect(error.code).toBe('OUTAGELESS_ERR_INIT_SITE_EXISTS');
    expect(error.hint).toContain('--force');
    expect(result.stderr).toContain('OUTAGELESS_ERR_INIT_SITE_EXISTS');
    expect(await snapshot(dir)).toEqual({ 'plugins/local/x/version.ts': 'keep me' });
  });
});
