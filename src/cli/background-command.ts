import { Command } from 'commander';
import { errors, ExitCode } from '../errors.ts';
import { migrationErrors } from '../migrations/errors.ts';
import {
  cancelBackgroundMigration,
  parseMigrationName,
  pauseBackgroundMigration,
  readBackgroundMigration,
  readBackgroundMigrations,
  resumeBackgroundMigration,
  retryBackgroundMigration,
} from '../migrations/store.ts';
import type { BackgroundMigration } from '../migrations/types.ts';
import type { Kysely } from 'kysely';
import { discoverSite } from '../component/discover.ts';
import { findBackgroundStep, finishBackgroundMigration } from '../migrations/engine.ts';
import { backgroundProgress, backgroundToJson, describeRange, formatDuration, progressBar } from '../runtime/background-progress.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/**
 * One migration as text: on a TTY a progress bar line and a detail line; otherwise plain
 * lines a log or a pipe keeps readable.
 *
 * @example
 * ```ts
 * formatBackground(migration, { tty: false })
 * // => 'mod_quiz/attempts_v2  running  45.0%  quiz_attempts.id 1..1000, cursor 450  batches 3  rows changed 450  batch size 150  900 rows/s  ETA 1 s'
 * ```
 */
export function formatBackground(migration: BackgroundMigration, options: { tty: boolean; indent?: string; now?: Date }): string {
  const progress = backgroundProgress(migration, options.now);
  const indent = options.indent ?? '';
  const percent = `${progress.percent.toFixed(1)}%`;
  const rate = progress.rowsPerSecond === null ? '- rows/s' : `${Math.round(progress.rowsPerSecond)} rows/s`;
  const eta = progress.etaSeconds === null ? '' : `  ETA ${formatDuration(progress.etaSeconds)}`;
  const counts = `batches ${migration.batches}  rows changed ${migration.rowsChanged}  batch size ${migration.batchSize}`;
  const error = migration.error ? `\n${indent}  error: ${migration.error}` : '';
  if (options.tty) {
    return `${indent}${progress.name}  ${migration.state.padEnd(9)} ${progressBar(progress.percent)} ${percent.padStart(6)}  ${rate}${eta}\n${indent}  ${describeRange(migration)}  ${counts}${error}`;
  }
  return `${indent}${progress.name}  ${migration.state}  ${percent}  ${describeRange(migration)}  ${counts}  ${rate}${eta}${error}`;
}

/** Every migration as text, or a line saying there are none. */
export function formatBackgroundList(migrations: readonly BackgroundMigration[], options: { tty: boolean; indent?: string }): string {
  if (migrations.length === 0) return `${options.indent ?? ''}No background migrations.`;
  const now = new Date();
  return migrations.map((migration) => formatBackground(migration, { ...options, now })).join('\n');
}

/** The JSON of `background status` and of `status`'s `backgroundMigrations`. */
export function backgroundListToJson(migrations: readonly BackgroundMigration[]): Record<string, unknown>[] {
  const now = new Date();
  return migrations.map((migration) => backgroundToJson(migration, now));
}

/** Splits `<component>/<id>`; anything else is a usage error (exit 64). */
function migrationName(name: string): { component: string; id: string } {
  const parsed = parseMigrationName(name);
  if (!parsed) throw errors.usage(`expected a background migration as <component>/<id> (e.g. mod_quiz/attempts_v2), got "${name}"`);
  return parsed;
}

type Transition = 'pause' | 'resume' | 'retry' | 'cancel';

const TRANSITIONS: Readonly<Record<Transition, {
  readonly description: string;
  readonly apply: (db: Kysely<any>, component: string, id: string) => Promise<BackgroundMigration>;
  readonly done: string;
}>> = {
  pause: { description: 'pause a queued or running migration after the batch in flight', apply: pauseBackgroundMigration, done: 'paused: no batch runs until `outageless background resume`' },
  resume: { description: 'resume a paused migration where its cursor is', apply: resumeBackgroundMigration, done: 'resumed' },
  retry: { description: 'retry a failed migration from the key that failed', apply: retryBackgroundMigration, done: 'retried from the key that failed' },
  cancel: { description: 'cancel a migration that is not finished (final; what was migrated stays)', apply: cancelBackgroundMigration, done: 'cancelled' },
};

function transitionCommand(run: (result: Promise<CommandResult>) => void, name: Transition): Command {
  const transition = TRANSITIONS[name];
  return withSiteOptions(new Command(name))
    .description(transition.description)
    .argument('<migration>', '<component>/<id>')
    .action((migration: string, options: SiteOptions) => {
      // Parsed before the database is opened: a malformed name changes nothing.
      const { component, id } = migrationName(migration);
      run(
        withDatabase(options, async (database) => {
          const changed = await transition.apply(database.db, component, id);
          const out = output(options);
          out.text(`${component}/${id} ${transition.done} (now ${changed.state}).`);
          out.text(formatBackground(changed, { tty: false, indent: '  ' }));
          out.json({ migration: backgroundToJson(changed) });
          return ExitCode.ok;
        }),
      );
    });
}

/** `outageless background status [--json]`: every background migration with its progress. */
function statusSubcommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('status'))
    .description('list background migrations: state, progress %, rows/s, ETA, cursor versus range, batches, rows changed, batch size, error')
    .action((options: SiteOptions) =>
      run(
        withDatabase(options, async (database) => {
          const migrations = await readBackgroundMigrations(database.db);
          const out = output(options);
          out.text(formatBackgroundList(migrations, { tty: process.stdout.isTTY === true }));
          out.json({ backgroundMigrations: backgroundListToJson(migrations) });
          return ExitCode.ok;
        }),
      ),
    );
}

/** Thrown from the progress callback to leave the foreground loop after a committed batch. */
class StopRequested extends Error {}

/**
 * `outageless background finish <component>/<id>`: runs the rest now, in this process, with a
 * progress bar (plain lines when stdout is not a TTY). Ctrl-C stops after the batch in flight
 * has committed (exit 1, nothing half-done; run it again to go on); a second Ctrl-C exits at
 * once, and the batch in flight rolls back with its connection.
 */
function finishSubcommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('finish'))
    .description('run the rest of a migration now, in the foreground, with a progress bar (Ctrl-C stops after the batch in flight)')
    .argument('<migration>', '<component>/<id>')
    .action((migration: string, options: SiteOptions) => {
      const { component, id } = migrationName(migration);
      run(finish(component, id, options));
    });
}

async function finish(component: string, id: string, options: SiteOptions): Promise<CommandResult> {
  const code = await discoverSite(options.root);
  return withDatabase(options, async (database) => {
    const out = output(options);
    const tty = process.stdout.isTTY === true && !options.json;
    const before = await readBackgroundMigration(database.db, component, id);
    // Refusals that need no code come first: an unknown name, a cancelled migration.
    if (!before) throw migrationErrors.unknownMigration(component, id, (await readBackgroundMigrations(database.db)).map((m) => `${m.component}/${m.id}`));
    if (before.state === 'cancelled') throw migrationErrors.transitionRefused(component, id, 'finish', before.state);
    if (before.state === 'finished') {
      out.text(`${component}/${id} is already finished: ${before.rowsChanged} rows changed in ${before.batches} batches.`);
      out.json({ stopped: false, migration: backgroundToJson(before) });
      return ExitCode.ok;
    }
    const step = await findBackgroundStep(code, component, id);

    let stopping = false;
    const onSigint = () => {
      if (stopping) {
        process.stderr.write('\nStopped at once; the batch in flight rolls back.\n');
        process.exit(ExitCode.error);
      }
      stopping = true;
      process.stderr.write(`\nStopping after the batch in flight (Ctrl-C again to stop at once)…\n`);
    };
    process.on('SIGINT', onSigint);

    const started = performance.now();
    const startKeys = backgroundProgress(before).keysDone;
    let lastLine = 0;
    const show = (current: BackgroundMigration, final: boolean) => {
      const progress = backgroundProgress(current);
      const seconds = (performance.now() - started) / 1000;
      const keysPerSecond = seconds > 0 ? (progress.keysDone - startKeys) / seconds : 0;
      const rowsPerSecond = seconds > 0 ? (current.rowsChanged - before.rowsChanged) / seconds : 0;
      const eta = keysPerSecond > 0 ? formatDuration((progress.keysTotal - progress.keysDone) / keysPerSecond) : '-';
      const line = `${progressBar(progress.percent)} ${progress.percent.toFixed(1).padStart(5)}%  cursor ${current.cursor ?? '-'} of ${current.maxKey ?? '-'}  ${current.batches} batches  ${Math.round(rowsPerSecond)} rows/s  ETA ${eta}`;
      if (tty) process.stdout.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
      else if (final || performance.now() - lastLine >= 1000) {
        lastLine = performance.now();
        out.text(`${progress.name}  ${progress.percent.toFixed(1)}%  cursor ${current.cursor ?? '-'} of ${current.maxKey ?? '-'}  batches ${current.batches}  rows changed ${current.rowsChanged}  batch size ${current.batchSize}  ${Math.round(rowsPerSecond)} rows/s  ETA ${eta}`);
      }
    };

    out.text(`Finishing ${component}/${id} in the foreground (${describeRange(before)}, ${before.state}).`);
    let last: BackgroundMigration = before;
    try {
      last = await finishBackgroundMigration(database.db, component, step, {
        onProgress: (current) => {
          last = current;
          if (!options.json) show(current, false);
          // Raised after the batch committed, so the stop leaves nothing half-done.
          if (stopping && current.state !== 'finished') throw new StopRequested();
        },
      });
    } catch (error) {
      if (!(error instanceof StopRequested)) {
        if (tty) process.stdout.write('\n');
        throw error;
      }
      if (!options.json) show(last, true);
      const progress = backgroundProgress(last);
      out.text(`Stopped after the batch in flight: ${progress.percent.toFixed(1)}% done, cursor ${last.cursor ?? '-'}. It stays ${last.state}: workers go on with it${last.state === 'paused' ? ' once resumed' : ''}, or run \`outageless background finish ${component}/${id}\` again.`);
      out.json({ stopped: true, migration: backgroundToJson(last) });
      return ExitCode.error;
    } finally {
      process.off('SIGINT', onSigint);
    }
    if (!options.json) show(last, true);
    const seconds = (performance.now() - started) / 1000;
    out.text(`${component}/${id} finished: ${last.rowsChanged} rows changed in ${last.batches} batches (${formatDuration(seconds)} in the foreground).`);
    out.json({ stopped: false, migration: backgroundToJson(last) });
    return ExitCode.ok;
  });
}

/**
 * `outageless background status|pause|resume|retry|cancel|finish`: the lifecycle of batched
 * background migrations (DESIGN §4.6). Unknown names and refused transitions are coded
 * errors with exit 1; a malformed name is a usage error (64).
 */
export function backgroundCommand(run: (result: Promise<CommandResult>) => void): Command {
  const command = new Command('background').description('batched background migrations: status, pause, resume, retry, cancel, finish in the foreground');
  command.addCommand(statusSubcommand(run));
  for (const name of ['pause', 'resume', 'retry', 'cancel'] as const) command.addCommand(transitionCommand(run, name));
  command.addCommand(finishSubcommand(run));
  return command;
}
