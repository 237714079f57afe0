/**
 * What the site's runtime needs, and the errors when it is missing (issue 10, "Wrong fix
 * lines"): a Node older than engines.node is refused by the bin with
 * OUTAGELESS_ERR_NODE_VERSION before anything loads (not "Unknown file extension .ts"); a
 * site whose package.json says `"type": "commonjs"` fails to load with a fix that says to set
 * `"type": "module"` (not "erasable TypeScript"); a Node with type stripping turned off says
 * so. The real binary runs each case: the exit code and the printed fix are the point.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkNodeVersion, neededNodeRange } from '../../src/cli/node-version.ts';
import { cli, createSiteDir, REPO, writeBareCore, type CliResult, type SiteDir } from '../support/sites.ts';

const BIN = join(REPO, 'bin', 'outageless.js');
/** The machine's own Node (20 here), older than the engines range. */
const SYSTEM_NODE = '/usr/bin/node';
const systemNodeVersion = existsSync(SYSTEM_NODE) ? execFileSync(SYSTEM_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim() : undefined;
const systemNodeTooOld = systemNodeVersion !== undefined && checkNodeVersion(systemNodeVersion) !== undefined;

function runNode(node: string, args: readonly string[]): Promise<CliResult> {
  const child = spawn(node, args, { env: { ...process.env, OUTAGELESS_DATABASE_URL: '', DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolveRun) => child.on('close', (code) => resolveRun({ code: code ?? -1, stdout, stderr })));
}

describe('the Node.js version (OUTAGELESS_ERR_NODE_VERSION)', () => {
  it('compares against engines.node of package.json', async () => {
    const engines = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    expect(neededNodeRange()).toBe(engines);
    expect(checkNodeVersion('22.11.9', '>=22.12')?.code).toBe('OUTAGELESS_ERR_NODE_VERSION');
    expect(checkNodeVersion('20.20.2', '>=22.12')?.message).toContain('needs Node.js >=22.12, but this is Node.js 20.20.2');
    expect(checkNodeVersion('22.12.0', '>=22.12')).toBeUndefined();
    expect(checkNodeVersion('23.0.0', '>=22.12')).toBeUndefined();
    expect(checkNodeVersion('v24.9.0', '>=22.12')).toBeUndefined();
    // A range it cannot read is npm's business, not a refusal.
    expect(checkNodeVersion('20.0.0', '^22 || ^24')).toBeUndefined();
  });

  it.skipIf(!systemNodeTooOld)(`the bin under ${SYSTEM_NODE} (Node ${systemNodeVersion ?? 'absent'}) exits 1 naming the version found and needed`, async () => {
    const result = await runNode(SYSTEM_NODE, [BIN, 'status', '--root', REPO]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('OUTAGELESS_ERR_NODE_VERSION');
    expect(result.stderr).toContain(`this is Node.js ${systemNodeVersion}`);
    expect(result.stderr).toContain('>=22.12');
    expect(result.stderr).toMatch(/fix: Install Node\.js 24/);
    expect(result.stderr).not.toContain('Unknown file extension');
    expect(result.stderr).not.toMatch(/\n\s+at /);

    const json = await runNode(SYSTEM_NODE, [BIN, 'upgrade', '--is-pending', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'OUTAGELESS_ERR_NODE_VERSION', field: 'engines.node' } });
  });
});

describe('loading the site\'s .ts files (OUTAGELESS_ERR_LOAD_FAILED fix lines)', () => {
  let site: SiteDir;

  beforeAll(async () => {
    site = await createSiteDir();
    await writeBareCore(site, 2026120200);
  });

  afterAll(async () => {
    await site.cleanup();
  });

  const loadFailure = (result: CliResult) => {
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain('OUTAGELESS_ERR_LOAD_FAILED');
    expect(result.stderr).toContain('file: core/version.ts');
    expect(result.stderr).not.toContain('Unexpected error');
    return /fix: (.*)/.exec(result.stderr)?.[1] ?? '';
  };

  it('under "type": "commonjs" the fix says to set "type": "module" in that package.json', async () => {
    await site.write('package.json', JSON.stringify({ name: 'old-site', type: 'commonjs' }));
    const fix = loadFailure(await cli(['lint', '--root', site.root]));
    expect(fix).toContain(`Set "type": "module" in ${join(site.root, 'package.json')}`);
    expect(fix).not.toContain('erasable');
  });

  it('under "type": "module" a file Node cannot strip keeps the erasable-TypeScript fix', async () => {
    await site.write('package.json', JSON.stringify({ name: 'site', type: 'module' }));
    const version = await readFile(join(site.root, 'core/version.ts'), 'utf8');
    await site.write('core/version.ts', `${version}enum Colour { Red }\nexport const colour = Colour.Red;\n`);
    try {
      const fix = loadFailure(await cli(['lint', '--root', site.root]));
      expect(fix).toContain('erasable TypeScript only');
      expect(fix).not.toContain('"type": "module"');
    } finally {
      await site.write('core/version.ts', version);
    }
  });

  it('a Node with type stripping turned off says so instead of only "Unknown file extension .ts"', async () => {
    await site.write('package.json', JSON.stringify({ name: 'site', type: 'module' }));
    const fix = loadFailure(await runNode(process.execPath, ['--no-experimental-strip-types', BIN, 'lint', '--root', site.root]));
    expect(fix).toContain('type stripping turned off');
    expect(fix).toContain('--no-experimental-strip-types');
  });
});
