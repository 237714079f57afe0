/**
 * The `npm pack` smoke test (DESIGN §5, issue 10 item 4): the package as a user installs it.
 * It is packed, installed into a scratch app with npm, and taken from nothing to a served site
 * with the installed bin: `init`, `upgrade --non-interactive`, `lint`, `check-schema`, `serve`
 * and one request to the scaffold's plugin route, on the embedded database. The scaffold also
 * type-checks against the packed declarations.
 *
 * One pack and one install for the whole file (the install is most of its time). The pack
 * skips `prepack`: `npm test` has just built dist, and rebuilding it here would rewrite the
 * files other test files are running. The bin is started with this process's Node (24), not
 * through `npx`, which could pick up an older system Node.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/sites.ts';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Node 24 first on the PATH, so `npm` (a `#!/usr/bin/env node` script) runs on it too. */
const env = {
  ...process.env,
  PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
  OUTAGELESS_DATABASE_URL: '',
  DATABASE_URL: '',
  npm_config_update_notifier: 'false',
};

function run(command: string, args: readonly string[], cwd: string, timeoutMs = 240_000): Promise<Run> {
  const started = performance.now();
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolveRun) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? (signal ? 128 : -1), stdout, stderr, ms: Math.round(performance.now() - started) });
    });
  });
}

const show = (result: Run) => `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;

let scratch: string;
let app: string;
let tarballFiles: string[];
const timings: Record<string, number> = {};

/** The installed bin, as `npx outageless` would find it. */
const outageless = (args: readonly string[]) => run(process.execPath, [join(app, 'node_modules', 'outageless', 'bin', 'outageless.js'), ...args], app);

beforeAll(async () => {
  if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  scratch = await mkdtemp(join(tmpdir(), 'outageless-pack-'));
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], REPO);
  expect(pack.code, show(pack)).toBe(0);
  timings.pack = pack.ms;
  const [packed] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  tarballFiles = packed!.files.map((file) => file.path).sort();

  app = join(scratch, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'scratch-app', private: true }, null, 2)}\n`);
  const install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(scratch, packed!.filename)], app);
  expect(install.code, show(install)).toBe(0);
  timings.install = install.ms;
}, 300_000);

afterAll(async () => {
  console.info(`pack smoke timings (ms): ${JSON.stringify(timings)}`);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the compiled CLI and library, its README and package.json: no sources, tests, examples, benchmarks or source maps', () => {
    const unexpected = tarballFiles.filter((path) => !/^(dist\/.+\.(js|d\.ts)|bin\/outageless\.js|README\.md|LICENSE|package\.json)$/.test(path));
    expect(unexpected).toEqual([]);
    for (const entry of ['bin/outageless.js', 'dist/cli/main.js', 'dist/cli/init-command.js', 'dist/cli/node-version.js', 'dist/index.js', 'dist/index.d.ts', 'dist/fastify/index.d.ts', 'README.md', 'LICENSE', 'package.json']) {
      expect(tarballFiles).toContain(entry);
    }
  });

  it('runs nothing on install: no prepare or install scripts, and prepack builds', async () => {
    const manifest = JSON.parse(await readFile(join(app, 'node_modules', 'outageless', 'package.json'), 'utf8')) as { scripts: Record<string, string>; engines: { node: string } };
    for (const script of ['prepare', 'preinstall', 'install', 'postinstall']) expect(manifest.scripts).not.toHaveProperty(script);
    expect(manifest.scripts.prepack).toContain('tsc');
    expect(manifest.engines.node).toBe('>=22.12');
  });
});

describe('from nothing to a served site with the installed bin, on the embedded database', () => {
  it('init, upgrade, lint, check-schema and serve: the plugin route answers 200 with the row its install wrote', async () => {
    const init = await outageless(['init', '--json']);
    expect(init.code, show(init)).toBe(0);
    timings.init = init.ms;
    const report = JSON.parse(init.stdout) as { files: { path: string; action: string }[]; next: string[] };
    // The install above wrote package.json: init adds to it instead of replacing it.
    expect(report.files).toContainEqual({ path: 'package.json', action: 'updated' });
    expect(report.files).toContainEqual({ path: 'plugins/local/hello/index.ts', action: 'created' });
    expect(report.next).not.toContain('npm install');
    const manifest = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as { type: string; dependencies: Record<string, string> };
    expect(manifest.type).toBe('module');
    expect(manifest.dependencies.outageless).toMatch(/^file:/);
    expect(await readFile(join(app, '.gitignore'), 'utf8')).toContain('.outageless/');

    const upgrade = await outageless(['upgrade', '--non-interactive']);
    expect(upgrade.code, show(upgrade)).toBe(0);
    timings.upgrade = upgrade.ms;
    expect(upgrade.stdout).toContain('local_hello');
    expect(existsSync(join(app, '.outageless', 'db'))).toBe(true);

    const lint = await outageless(['lint']);
    expect(lint.code, show(lint)).toBe(0);
    const schema = await outageless(['check-schema']);
    expect(schema.code, show(schema)).toBe(0);
    timings.lintAndCheckSchema = lint.ms + schema.ms;

    const started = performance.now();
    const serve = spawn(process.execPath, [join(app, 'node_modules', 'outageless', 'bin', 'outageless.js'), 'serve', '--port', '0'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    serve.stdout.on('data', (chunk) => (stdout += chunk));
    serve.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolveExit) => serve.once('exit', (code) => resolveExit(code)));
    try {
      let url: string | undefined;
      const deadline = Date.now() + 120_000;
      while (!(url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1])) {
        if (serve.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not listen\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);
        await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      }
      timings.serveReady = Math.round(performance.now() - started);
      const response = await fetch(`${url}/local_hello/`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ component: 'local_hello', greetings: [{ id: 1, message: 'Hello from local_hello' }] });
      const core = await fetch(`${url}/`);
      expect(core.status).toBe(200);
      expect(await core.json()).toMatchObject({ component: 'core', site: 'scratch-app' });
    } finally {
      if (serve.exitCode === null) serve.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 400_000);

  // Runs on the app the test above initialised.
  it('the scaffold type-checks against the packed declarations (app.outagelessDatabase, TablesOf)', async () => {
    // The repo's TypeScript over the app's tsconfig: types resolve from the app's node_modules.
    const tsc = await run(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(app, 'tsconfig.json')], app);
    timings.tsc = tsc.ms;
    expect(tsc.code, show(tsc)).toBe(0);
  }, 120_000);
});
