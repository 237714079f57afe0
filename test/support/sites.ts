/**
 * Example-site working copies for tests: a temp app root that can be "deployed" with any
 * release of examples/lms, the way an operator replaces code on disk between upgrades.
 */
import { cp, mkdtemp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawn } from 'node:child_process';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const RELEASES = join(REPO, 'examples', 'lms', 'releases');
const BIN = join(REPO, 'bin', 'outageless.js');

export interface SiteDir {
  readonly root: string;
  /** Replaces core/ and plugins/ with release `n` of the example site. */
  deploy(release: number | string): Promise<void>;
  /** Rewrites a file under the root (path relative to it). */
  edit(path: string, change: (text: string) => string): Promise<void>;
  write(path: string, text: string): Promise<void>;
  remove(path: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function createSiteDir(release?: number | string): Promise<SiteDir> {
  const root = await mkdtemp(join(tmpdir(), 'outageless-site-'));
  // Plugin files import 'outageless'; a symlinked package resolves it as an installed app would.
  await mkdir(join(root, 'node_modules'), { recursive: true });
  await symlink(REPO, join(root, 'node_modules', 'outageless'), 'dir');
  const site: SiteDir = {
    root,
    async deploy(n) {
      await rm(join(root, 'core'), { recursive: true, force: true });
      await rm(join(root, 'plugins'), { recursive: true, force: true });
      const source = typeof n === 'number' ? join(RELEASES, String(n)) : n;
      await cp(join(source, 'core'), join(root, 'core'), { recursive: true });
      await cp(join(source, 'plugins'), join(root, 'plugins'), { recursive: true }).catch(() => {});
    },
    async edit(path, change) {
      const file = join(root, path);
      await writeFile(file, change(await readFile(file, 'utf8')));
    },
    async write(path, text) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), text);
    },
    async remove(path) {
      await rm(join(root, path), { recursive: true, force: true });
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
  if (release !== undefined) await site.deploy(release);
  return site;
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `outageless` binary (compiled dist, as users get it) and collects its output. */
export function cli(args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> & { child: import('node:child_process').ChildProcess } {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, OUTAGELESS_DATABASE_URL: '', DATABASE_URL: '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 150_000);
  const done = new Promise<CliResult>((resolvePromise) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
  return Object.assign(done, { child });
}

/**
 * Writes a bare core (no tables, no steps) at `version`, for tests whose site is one plugin
 * of their own: core must exist, and this one installs in milliseconds.
 */
export async function writeBareCore(site: SiteDir, version: number, pluginTypes: readonly string[] = ['local']): Promise<void> {
  await site.write('core/version.ts', `import { defineVersion } from 'outageless';
export default defineVersion({ component: 'core', version: ${version}, maturity: 'stable', pluginTypes: ${JSON.stringify(pluginTypes)} });
`);
  await site.write('core/db/schema.ts', `import { defineSchema } from 'outageless';\nexport default defineSchema({ tables: {} });\n`);
  await site.write('core/db/upgrade.ts', `import { defineUpgrade } from 'outageless';\nexport default defineUpgrade({ steps: [] });\n`);
}
