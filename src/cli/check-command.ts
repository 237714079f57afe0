import { Command } from 'commander';
import { ExitCode } from '../errors.ts';
import { checkToJson, readChecks, type OwedCheck } from '../migrations/manual.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/** One owed item as text: its name, what it is, and the command that acts on it. */
export function formatCheck(check: OwedCheck, indent = ''): string {
  return `${indent}${check.kind.padEnd(10)} ${check.name}  (since ${check.since.toISOString()})\n${indent}  ${check.detail}\n${indent}  → ${check.command}`;
}

/**
 * `outageless check [--json]`, the check API: exits 0 when nothing is owed, 2 when manual
 * actions, post steps or unfinished (or failed) background migrations are, each listed with
 * the command that acts on it. For monitoring: a cron or probe alerts on exit 2.
 */
export function checkCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('check'))
    .description('exit 2 and list what is owed (manual actions, post steps, background migrations), each with its command; exit 0 when nothing is')
    .action((options: SiteOptions) =>
      run(
        withDatabase(options, async (database) => {
          const checks = await readChecks(database.db);
          const out = output(options);
          out.text(checks.length === 0 ? 'Nothing is owed.' : `${checks.length} item(s) owed:\n${checks.map((check) => formatCheck(check, '  ')).join('\n')}`);
          out.json({ ok: checks.length === 0, owed: checks.map(checkToJson) });
          return checks.length === 0 ? ExitCode.ok : ExitCode.pendingOrMaintenance;
        }),
      ),
    );
}
