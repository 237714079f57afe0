import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface ProcessResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** From spawn() to the child's exit with its output drained, in milliseconds. */
  readonly wallMs: number;
}

/**
 * Runs `args` with this Node binary (process.execPath, so every measured command and the bare
 * start use the same Node) and times it from spawn to close.
 *
 * The environment drops OUTAGELESS_DATABASE_URL and DATABASE_URL so only `--database` counts.
 */
export function runNode(args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<ProcessResult> {
  const env = { ...process.env };
  delete env.OUTAGELESS_DATABASE_URL;
  delete env.DATABASE_URL;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      const wallMs = performance.now() - started;
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, wallMs });
    });
  });
}

/** Fails with the command's output when its exit code is not the expected one. */
export function expectExit(result: ProcessResult, expected: number, what: string): void {
  if (result.code === expected) return;
  const tail = (text: string) => text.trim().split('\n').slice(-20).join('\n');
  throw new Error(`${what}: exit code ${result.code}, expected ${expected}\n--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`);
}
