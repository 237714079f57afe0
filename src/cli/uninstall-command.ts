import { Command } from 'commander';
import { errors, ExitCode } from '../errors.ts';
import { runUninstall, type UninstallPlan } from '../upgrade/uninstall.ts';
import { confirm } from './confirm.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

interface UninstallFlags extends SiteOptions {
  readonly nonInteractive?: boolean;
  readonly yes?: boolean;
}

/**
 * What the uninstall drops, as the operator confirms it.
 *
 * @example
 * ```ts
 * formatUninstallPlan(plan)
 * // Uninstall block_news (installed 2026080100):
 * //   drop table block_news_post
 * //   …
 * ```
 */
export function formatUninstallPlan(plan: UninstallPlan): string {
  const lines: string[] = [];
  for (const target of plan.targets) {
    lines.push(`${target === plan.targets[0] ? 'Uninstall' : 'With its subplugin'} ${target.component} (installed ${target.version}):`);
    if (target.tables.length === 0) lines.push('  no tables to drop');
    for (const table of target.tables) lines.push(`  drop table ${table}`);
    for (const table of target.missingTables) lines.push(`  table ${table}: already gone`);
    for (const kept of target.keptTables) lines.push(`  keep table ${kept.table}: ${kept.owner} declares it now`);
  }
  lines.push(`  delete its state: installed record, pauses, owed steps and manual actions, formats, background migrations, deferred tasks, cache revision`);
  if (plan.queues.length > 0) lines.push(`  delete queues (their jobs and schedules): ${plan.queues.join(', ')}`);
  if (plan.deadEvents > 0) lines.push(`  delete ${plan.deadEvents} dead-lettered event(s)`);
  return lines.join('\n');
}

function planToJson(plan: UninstallPlan): Record<string, unknown> {
  return {
    component: plan.component,
    components: plan.targets.map((target) => ({ component: target.component, version: target.version, parent: target.parent, droppedTables: target.tables, missingTables: target.missingTables, keptTables: target.keptTables })),
    droppedTables: plan.targets.flatMap((target) => target.tables),
    queues: plan.queues,
    deadEvents: plan.deadEvents,
  };
}

/** `outageless uninstall <component>`: drop what a component whose code is gone left in the database. */
export function uninstallCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('uninstall'))
    .description('drop a component whose code was removed: its tables, state, queues and caches, under the upgrade lock, in one transaction')
    .argument('<component>', 'installed component, e.g. block_news')
    .option('--non-interactive', 'do not ask for confirmation')
    .option('-y, --yes', 'alias of --non-interactive')
    .action((component: string, flags: UninstallFlags) => {
      const yes = flags.nonInteractive === true || flags.yes === true;
      // Checked before the database is opened. The question would print into the JSON document.
      if (flags.json && !yes) throw errors.usage('uninstall --json needs --yes (or --non-interactive): the confirmation question would print into the JSON output');
      run(
        withDatabase(flags, async (database) => {
          const out = output(flags);
          const result = await runUninstall({
            database,
            root: flags.root,
            component,
            confirm: async (plan) => {
              out.text(formatUninstallPlan(plan));
              return yes || (await confirm(`Uninstall ${plan.targets.map((t) => t.component).join(', ')}? Its tables and data are dropped for good.`));
            },
          });
          const components = result.plan.targets.map((target) => target.component).join(', ');
          out.text(`Uninstalled ${components} in ${(result.durationMs / 1000).toFixed(2)} s: ${result.plan.targets.reduce((sum, t) => sum + t.tables.length, 0)} table(s) dropped.`);
          out.json({ result: 'uninstalled', runId: result.runId, durationMs: Math.round(result.durationMs), ...planToJson(result.plan), stateRows: result.stateRows });
          return ExitCode.ok;
        }),
      );
    });
}
