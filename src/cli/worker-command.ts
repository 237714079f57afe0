import { resolve } from 'node:path';
import { Command } from 'commander';
import { discoverSite } from '../component/discover.ts';
import { errors, ExitCode } from '../errors.ts';
import { readPause } from '../jobs/deferred.ts';
import { startBackgroundWorker, type BackgroundLogger } from '../migrations/engine.ts';
import { readFlags } from '../state/flags.ts';
import { ensureStateTables } from '../state/tables.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

interface WorkerOptions extends SiteOptions {
  readonly pollInterval: string;
  readonly pause: string;
}

/**
 * `outageless worker`: works batched background migrations without serving HTTP, on the
 * same rules as the fronts' workers (one batch at a time per migration across every front
 * and worker, throttled, durable). Runs until SIGTERM or SIGINT, then stops after the batch
 * in flight has committed. A SIGKILL loses nothing either: the batch in flight rolls back
 * with its bookkeeping and the next worker runs it again.
 *
 * @example
 * ```sh
 * outageless worker --root /srv/lms --database postgres://lms@db/lms
 * ```
 */
export function workerCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('worker'))
    .description('work background migrations without serving HTTP, until SIGTERM/SIGINT (the batch in flight finishes first)')
    .option('--poll-interval <ms>', 'how often to look for work when there is none (queueing, resume and retry also wake it at once)', '1000')
    .option('--pause <ms>', 'pause between two batches of a migration, so traffic gets the table in between', '20')
    .action((options: WorkerOptions) => run(work(options)));
}

function milliseconds(flag: string, value: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 0) throw errors.usage(`${flag} expects a number of milliseconds, got "${value}"`);
  return ms;
}

async function work(options: WorkerOptions): Promise<CommandResult> {
  const pollIntervalMs = Math.max(10, milliseconds('--poll-interval', options.pollInterval));
  const pauseMs = milliseconds('--pause', options.pause);
  const root = resolve(options.root);
  const code = await discoverSite(root);
  const out = output(options);
  // One line per event; JSON lines with --json, so a supervisor can parse them.
  const line = (stream: NodeJS.WriteStream, level: string) => (bindings: Record<string, unknown>, message: string) => {
    if (options.json) {
      const { err, ...rest } = bindings;
      process.stdout.write(`${JSON.stringify({ level, message, ...rest, ...(err instanceof Error ? { error: err.message } : {}) })}\n`);
    } else stream.write(`${message}\n`);
  };
  const log: BackgroundLogger = { info: line(process.stdout, 'info'), warn: line(process.stderr, 'warn'), error: line(process.stderr, 'error') };

  return withDatabase(options, async (database) => {
    await ensureStateTables(database.db);
    const stopped = new Promise<string>((resolveStopped) => {
      process.once('SIGTERM', () => resolveStopped('SIGTERM'));
      process.once('SIGINT', () => resolveStopped('SIGINT'));
    });
    const worker = startBackgroundWorker({
      database,
      code,
      log,
      pollIntervalMs,
      pauseMs,
      // No front guards this process, so it reads the pauses itself: not while the site is in
      // maintenance, a maintenance-mode upgrade runs, or the component is paused on its own.
      mayRun: async (component) => {
        if ((await readFlags(database.db)).maintenance.enabled) return false;
        if ((await database.upgradeLock.holder())?.mode === 'maintenance') return false;
        return !(await readPause(database.db, component, code.components.get(component)?.parent));
      },
    });
    out.text(`outageless worker for ${root}: working background migrations (SIGTERM or SIGINT stops it after the batch in flight)`);
    out.json({ worker: { root, pid: process.pid, state: 'started' } });
    const signal = await stopped;
    await worker.stop();
    out.text(`${signal}: stopped after the batch in flight`);
    out.json({ worker: { root, pid: process.pid, state: 'stopped', signal } });
    return ExitCode.ok;
  });
}
