import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { errors, ExitCode, isOutagelessError } from '../errors.ts';
import { isConnectionLoss } from '../database/connection-loss.ts';
import type { CommandResult } from './context.ts';
import { checkSchemaCommand, purgeCachesCommand, statusCommand } from './site-commands.ts';
import { maintenanceCommand, serveCommand } from './front-commands.ts';
import { upgradeCommand } from './upgrade-command.ts';
import { lintCommand } from './lint-command.ts';
import { rehearseCommand } from './rehearse-command.ts';
import { workerCommand } from './worker-command.ts';
import { backgroundCommand } from './background-command.ts';
import { manualCommand } from './manual-command.ts';
import { checkCommand } from './check-command.ts';
import { dataCommand } from './data-command.ts';
import { initCommand } from './init-command.ts';
import { uninstallCommand } from './uninstall-command.ts';

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
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
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) })
    .addCommand(initCommand(run))
    .addCommand(upgradeCommand(run))
    .addCommand(statusCommand(run))
    .addCommand(checkSchemaCommand(run))
    .addCommand(purgeCachesCommand(run))
    .addCommand(maintenanceCommand(run))
    .addCommand(serveCommand(run))
    .addCommand(lintCommand(run))
    .addCommand(backgroundCommand(run))
    .addCommand(manualCommand(run))
    .addCommand(checkCommand(run))
    .addCommand(dataCommand(run))
    .addCommand(rehearseCommand(run))
    .addCommand(uninstallCommand(run))
    .addCommand(workerCommand(run));
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

