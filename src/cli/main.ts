import { Command, CommanderError } from 'commander';
import { ownPackageJson } from './node-version.ts';
import { errors, ExitCode, isOutagelessError } from '../errors.ts';
import { isConnectionLoss } from '../database/connection-loss.ts';
import type { CommandResult } from './context.ts';

/** What a command module exports: a factory that defines the command and hands its work to `run`. */
type CommandFactory = (run: (result: Promise<CommandResult>) => void) => Command;

/**
 * Every command, by name, with the import of the module that defines it. A command line loads
 * only the module of the command it names, so `upgrade --is-pending` (run by deploy pipelines
 * on every deploy) loads no web server, job queue or rehearsal code. Anything else (no command,
 * `help`, `--version`, a misspelt command) loads them all, for commander's listing and errors.
 * Add a command here rather than as a static import; test/cli/lazy-commands.test.ts checks
 * that each entry's module defines the command of that name.
 *
 * @example
 * ```ts
 * ['history', async () => (await import('./history-command.ts')).historyCommand],
 * ```
 */
export const COMMANDS: readonly (readonly [name: string, load: () => Promise<CommandFactory>])[] = [
  ['init', async () => (await import('./init-command.ts')).initCommand],
  ['upgrade', async () => (await import('./upgrade-command.ts')).upgradeCommand],
  ['status', async () => (await import('./site-commands.ts')).statusCommand],
  ['check-schema', async () => (await import('./site-commands.ts')).checkSchemaCommand],
  ['purge-caches', async () => (await import('./site-commands.ts')).purgeCachesCommand],
  ['maintenance', async () => (await import('./front-commands.ts')).maintenanceCommand],
  ['serve', async () => (await import('./front-commands.ts')).serveCommand],
  ['lint', async () => (await import('./lint-command.ts')).lintCommand],
  ['background', async () => (await import('./background-command.ts')).backgroundCommand],
  ['manual', async () => (await import('./manual-command.ts')).manualCommand],
  ['check', async () => (await import('./check-command.ts')).checkCommand],
  ['data', async () => (await import('./data-command.ts')).dataCommand],
  ['rehearse', async () => (await import('./rehearse-command.ts')).rehearseCommand],
  ['worker', async () => (await import('./worker-command.ts')).workerCommand],
  ['history', async () => (await import('./history-command.ts')).historyCommand],
  ['uninstall', async () => (await import('./uninstall-command.ts')).uninstallCommand],
];

/** The factories of the commands `argv` may run: the one it names, or all of them. */
async function commandsFor(argv: readonly string[]): Promise<CommandFactory[]> {
  const named = COMMANDS.filter(([name]) => name === argv[0]);
  return Promise.all((named.length > 0 ? named : COMMANDS).map(([, load]) => load()));
}

/** Calls `configure` on every command below `command`, however deeply nested. */
function applyToSubcommands(command: Command, configure: (command: Command) => void): void {
  for (const subcommand of command.commands) {
    configure(subcommand);
    applyToSubcommands(subcommand, configure);
  }
}

/**
 * The `outageless` command line. Every command returns its exit code; errors users can act
 * on print their code, location and fix (as JSON with `--json`), never a stack trace.
 */
export async function main(argv: readonly string[]): Promise<number> {
  let pending: Promise<CommandResult> | undefined;
  const run = (result: Promise<CommandResult>) => {
    pending = result;
  };
  const json = argv.includes('--json');

  const program = new Command('outageless')
    .description('Upgrade plugin-based Node.js applications with the smallest outage each change allows.')
    .version(ownPackageJson().version, '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  // Only the module of the command being run is loaded (COMMANDS).
  for (const factory of await commandsFor(argv)) program.addCommand(factory(run));
  // addCommand() copies no settings to a subcommand, so without this a bad flag on `upgrade`
  // would make commander print its message and call process.exit(1) itself.
  applyToSubcommands(program, (command) => command.exitOverride().configureOutput({ writeErr: (text) => process.stderr.write(text) }));

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return pending ? await pending : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (isOutagelessError(error)) {
      if (json) process.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
      process.stderr.write(`${error.describe()}\n`);
      return error.exitCode;
    }
    if (isConnectionLoss(error)) {
      const lost = errors.connectionLost(error);
      if (json) process.stdout.write(`${JSON.stringify({ error: lost.toJSON() }, null, 2)}\n`);
      process.stderr.write(`${lost.describe()}\n`);
      return lost.exitCode;
    }
    process.stderr.write(`Unexpected error (a bug in outageless or a component; please report it):\n${error instanceof Error ? error.stack : String(error)}\n`);
    return ExitCode.error;
  }
}

