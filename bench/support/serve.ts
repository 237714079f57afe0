/**
 * Fronts and sites for benchmarks: `outageless serve` processes (the compiled CLI) on ports the
 * OS picks, and example releases copied to a temp dir whose node_modules/outageless links here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './site.ts';

export const BIN = join(REPO, 'bin', 'outageless.js');

export interface ServedProcess {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Spawns `args` with this Node; waits for "listening on http://…" on stdout and a 200 from `readyPath`. */
export async function startServed(args: readonly string[], readyPath = '/healthz', timeoutMs = 30_000): Promise<ServedProcess> {
  const env = { ...process.env, OUTAGELESS_DATABASE_URL: '', DATABASE_URL: '' };
  const child = spawn(process.execPath, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const deadline = Date.now() + timeoutMs;
  const fail = (why: string) => {
    if (!exited) child.kill('SIGKILL');
    return new Error(`${why}: node ${args.join(' ')}\n--- stdout\n${stdout.slice(-2000)}\n--- stderr\n${stderr.slice(-2000)}`);
  };
  let url: string | undefined;
  while (!url) {
    url = /listening on (http:\/\/[^\s]+)/.exec(stdout)?.[1];
    if (url) break;
    if (exited || Date.now() > deadline) throw fail('did not announce its address');
    await sleep(20);
  }
  for (;;) {
    try {
      const response = await fetch(`${url}${readyPath}`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch { /* not yet */ }
    if (exited || Date.now() > deadline) throw fail(`${readyPath} did not answer 200`);
    await sleep(20);
  }
  return {
    url,
    child,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}

export function startFront(root: string, database: string): Promise<ServedProcess> {
  return startServed([BIN, 'serve', '--root', root, '--database', database, '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn']);
}

export interface TempSite {
  readonly root: string;
  cleanup(): Promise<void>;
}

/** An empty temp dir with node_modules/outageless linked to this repository. */
export async function tempSite(prefix: string): Promise<TempSite> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  await mkdir(join(root, 'node_modules'), { recursive: true });
  await symlink(REPO, join(root, 'node_modules', 'outageless'), 'dir');
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Replaces core/ and plugins/ of `root` with those of examples/lms/releases/<release>. */
export async function copyRelease(root: string, release: string): Promise<void> {
  const from = join(REPO, 'examples', 'lms', 'releases', release);
  await rm(join(root, 'core'), { recursive: true, force: true });
  await rm(join(root, 'plugins'), { recursive: true, force: true });
  await cp(join(from, 'core'), join(root, 'core'), { recursive: true });
  await cp(join(from, 'plugins'), join(root, 'plugins'), { recursive: true });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
