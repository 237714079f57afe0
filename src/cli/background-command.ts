import { Command } from 'commander';
import { errors, ExitCode } from '../errors.ts';
import {
  cancelBackgroundMigration,
  parseMigrationName,
  pauseBackgroundMigration,
  readBackgroundMigrations,
  resumeBackgroundMigration,
  retryBackgroundMigration,
} from '../migrations/store.ts';
import type { BackgroundMigration } from '../migrations/types.ts';
import type { Kysely } from 'kysely';
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

/**
 * `outageless background status|pause|resume|retry|cancel|finish`: the lifecycle of batched
 * background migrations (DESIGN §4.6). Unknown names and refused transitions are coded
 * errors with exit 1; a malformed name is a usage error (64).
 */
export function backgroundCommand(run: (result: Promise<CommandResult>) => void): Command {
  const command = new Command('background').description('batched background migrations: status, pause, resume, retry, cancel, finish in the foreground');
  command.addCommand(statusSubcommand(run));
  for (const name of ['pause', 'resume', 'retry', 'cancel'] as const) command.addCommand(transitionCommand(run, name));
  return command;
}
