/**
 * Fronts for tests: a real `outageless serve` process (the compiled CLI, as users run it) on
 * a port the OS picks, waited for until /healthz answers, and stopped the way a process
 * manager does it, with SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './sites.ts';

const BIN = join(REPO, 'bin', 'outageless.js');

export interface FrontProcess {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the process wrote so far (for failure messages). */
  output(): { stdout: string; stderr: string };
  /** Sends SIGTERM and waits for the exit (SIGKILL after `timeoutMs`); resolves with the exit code, or null if killed by a signal. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartFrontOptions {
  readonly root: string;
  readonly database: string;
  /** 0 (default) lets the OS pick a free port; the front announces it on stdout. */
  readonly port?: number;
  readonly logLevel?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for the announcement and a 200 from /healthz. */
  readonly readyTimeoutMs?: number;
}

/**
 * Starts `outageless serve --root <root> --database <url>` and resolves once /healthz answers 200.
 *
 * @example
 * ```ts
 * const front = await startFront({ root: site.root, database: scratch.url })
 * await fetch(`${front.url}/mod_assign/`)
 * expect((await front.stop()).code).toBe(0)
 * ```
 */
export async function startFront(options: StartFrontOptions): Promise<FrontProcess> {
  const args = [
    BIN, 'serve',
    '--root', options.root,
    '--database', options.database,
    '--host', '127.0.0.1',
    '--port', String(options.port ?? 0),
    '--log-level', options.logLevel ?? 'warn',
  ];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, OUTAGELESS_DATABASE_URL: '', DATABASE_URL: '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((result) => (exit = result));

  const report = () => `outageless serve ${options.root}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  try {
    // "outageless front for <root> listening on http://127.0.0.1:<port> (admin: …)"
    let url: string | undefined;
    while (!url) {
      url = /listening on (http:\/\/[^\s]+)/.exec(stdout)?.[1];
      if (url) break;
      if (exit) throw new Error(`the front exited (${exit.code ?? exit.signal}) before listening\n${report()}`);
      if (Date.now() > deadline) throw new Error(`the front did not announce its address in time\n${report()}`);
      await sleep(25);
    }
    while (!(await healthy(url))) {
      if (exit) throw new Error(`the front exited (${exit.code ?? exit.signal}) before /healthz answered\n${report()}`);
      if (Date.now() > deadline) throw new Error(`/healthz did not answer 200 in time\n${report()}`);
      await sleep(25);
    }
    return {
      url,
      pid: child.pid!,
      child,
      output: () => ({ stdout, stderr }),
      async stop(timeoutMs = 10_000) {
        if (!exit) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      },
    };
  } catch (error) {
    if (!exit) child.kill('SIGKILL');
    await exited;
    throw error;
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
