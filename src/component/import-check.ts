import { Worker } from 'node:worker_threads';

/**
 * A pre-check that a definition file finishes loading, run in a worker thread before the
 * real import. The main thread cannot time-box an endless synchronous loop at import (its
 * timers never get to run), but it can terminate a worker that is stuck in one.
 *
 * Files are checked one at a time, so a hang is blamed on the file that hangs, not on the
 * ones queued behind it. Import errors are the real import's to report: the worker only
 * says "finished". The worker is shared, started on first use and ended once idle.
 */

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
// The CLI turns the compile cache on (bin/outageless.js), but a worker is a Node instance of
// its own: without this it strips the TypeScript of every file it checks again.
require('node:module').enableCompileCache?.();
let queue = Promise.resolve();
parentPort.on('message', ({ id, url }) => {
  queue = queue.then(async () => {
    parentPort.postMessage({ id, state: 'started' });
    try { await import(url); } catch {}
    parentPort.postMessage({ id, state: 'done' });
  });
});
`;

/** How long an idle worker is kept for the next file (discovery imports in bursts). */
const IDLE_MS = 500;

interface Request {
  readonly url: string;
  readonly limitMs: number;
  readonly resolve: (finished: boolean) => void;
  timer?: NodeJS.Timeout;
}

let shared: { worker: Worker; requests: Map<number, Request>; idle?: NodeJS.Timeout } | undefined;
let nextId = 0;

function start(): NonNullable<typeof shared> {
  const worker = new Worker(WORKER_SOURCE, { eval: true, stdout: true, stderr: true });
  const state: NonNullable<typeof shared> = { worker, requests: new Map() };
  // Held only while a file is being checked, so an idle worker never keeps a process alive.
  worker.unref();
  // What plugin code prints at import is printed once, by the real import.
  worker.stdout.resume();
  worker.stderr.resume();
  worker.on('message', ({ id, state: progress }: { id: number; state: 'started' | 'done' }) => {
    const request = state.requests.get(id);
    if (!request) return;
    if (progress === 'started') {
      // The clock runs from when the worker starts on this file, not from when it was queued.
      request.timer = setTimeout(() => {
        if (shared === state) shared = undefined;
        state.requests.delete(id);
        void worker.terminate();
        request.resolve(false);
        // Files queued behind the stuck one are checked again by a fresh worker.
        for (const [otherId, other] of state.requests) {
          clearTimeout(other.timer);
          state.requests.delete(otherId);
          void finishesLoading(other.url, other.limitMs).then(other.resolve);
        }
      }, request.limitMs);
      return;
    }
    clearTimeout(request.timer);
    state.requests.delete(id);
    request.resolve(true);
    if (state.requests.size === 0) {
      worker.unref();
      state.idle = setTimeout(() => {
        if (shared === state && state.requests.size === 0) {
          shared = undefined;
          void worker.terminate();
        }
      }, IDLE_MS).unref();
    }
  });
  // A worker that cannot start (or dies) must not block loading: its files count as finished.
  const giveUp = () => {
    if (shared === state) shared = undefined;
    for (const request of state.requests.values()) {
      clearTimeout(request.timer);
      request.resolve(true);
    }
    state.requests.clear();
  };
  worker.on('error', giveUp);
  worker.on('exit', giveUp);
  return state;
}

/**
 * Resolves true when importing `url` finishes (or fails) within `limitMs` in a worker, false
 * when it does not: an endless loop or a top-level await that never settles.
 *
 * @example
 * ```ts
 * if (!(await finishesLoading(pathToFileURL(file).href, 10_000))) throw errors.loadTimeout(file, 10_000)
 * ```
 */
export function finishesLoading(url: string, limitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    shared ??= start();
    clearTimeout(shared.idle);
    const id = nextId++;
    shared.requests.set(id, { url, limitMs, resolve });
    shared.worker.ref();
    shared.worker.postMessage({ id, url });
  });
}
