import { Command } from 'commander';
import { discoverSite } from '../component/discover.ts';
import { errors, ExitCode } from '../errors.ts';
import { parseMigrationName } from '../migrations/store.ts';
import { readOwedManual, runManualAction, type OwedManualAction } from '../migrations/manual.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/**
 * `outageless manual list|run`: the manual actions (`phase: 'manual'` steps) the site owes.
 * `upgrade` never runs them; an operator does, when convenient.
 */

/** One owed action as text: `mod_quiz/quiz_regrade_all  owed since …  estimate …` and its description. */
export function formatManualAction(action: OwedManualAction, indent = ''): string {
  return `${indent}${action.component}/${action.id}  owed since ${action.since.toISOString()} (version ${action.version})  estimate: ${action.estimate}\n${indent}  ${action.description}\n${indent}  run: outageless manual run ${action.component}/${action.id}`;
}

/** The JSON of `manual list` and of `status`'s `manualActions`. */
export function manualActionToJson(action: OwedManualAction): Record<string, unknown> {
  return { component: action.component, id: action.id, version: action.version, since: action.since.toISOString(), description: action.description, estimate: action.estimate, command: `outageless manual run ${action.component}/${action.id}` };
}

function listSubcommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('list'))
    .description('list the owed manual actions: id, component, owed since, description, estimate')
    .action((options: SiteOptions) =>
      run(
        withDatabase(options, async (database) => {
          const owed = await readOwedManual(database.db);
          const out = output(options);
          out.text(owed.length === 0 ? 'No manual actions are owed.' : owed.map((action) => formatManualAction(action)).join('\n'));
          out.json({ manualActions: owed.map(manualActionToJson) });
          return ExitCode.ok;
        }),
      ),
    );
}

function runSubcommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('run'))
    .description('run one owed manual action now, under the upgrade lock, in one transaction, logged like a step')
    .argument('<action>', '<component>/<id>')
    .action((name: string, options: SiteOptions) => {
      // Parsed before the database is opened: a malformed name changes nothing.
      const parsed = parseMigrationName(name);
      if (!parsed) throw errors.usage(`expected a manual action as <component>/<id> (e.g. mod_quiz/quiz_regrade_all), got "${name}"`);
      run(
        (async () => {
          const code = await discoverSite(options.root);
          return withDatabase(options, async (database) => {
            const out = output(options);
            const lines: string[] = [];
            const { durationMs, action } = await runManualAction({
              database, code, component: parsed.component, id: parsed.id,
              onLog: (message) => {
                lines.push(message);
                out.text(message);
              },
            });
            out.json({ ran: manualActionToJson(action), durationMs: Math.round(durationMs), log: lines });
            return ExitCode.ok;
          });
        })(),
      );
    });
}

/** `outageless manual list|run`. */
export function manualCommand(run: (result: Promise<CommandResult>) => void): Command {
  return new Command('manual')
    .description('manual upgrade actions: owed when their version is reached, run by an operator')
    .addCommand(listSubcommand(run))
    .addCommand(runSubcommand(run));
}
