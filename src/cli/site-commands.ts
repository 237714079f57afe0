import { Command } from 'commander';
import { checkOperatorAction, cliActor, runOperatorAction } from '../runtime/operator-actions.ts';
import { discoverSite } from '../component/discover.ts';
import { loadSchema } from '../component/files.ts';
import { ExitCode } from '../errors.ts';
import { readPlan } from '../plan/read.ts';
import type { SchemaDefinition } from '../schema/definition.ts';
import { diffSchema } from '../schema/diff.ts';
import { readFlags } from '../state/flags.ts';
import { readInstalled } from '../state/installed.ts';
import { isStateTable } from '../state/tables.ts';
import { readComponentStates, reclaimStalePauses } from '../state/component-state.ts';
import { listFronts } from '../runtime/front-registry.ts';
import { readBackgroundMigrations } from '../migrations/store.ts';
import { backgroundListToJson, formatBackgroundList } from './background-command.ts';
import { formatManualAction, manualActionToJson } from './manual-command.ts';
import { readOwedManual } from '../migrations/manual.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';
import { formatFlags, formatPlan, planToJson } from './format.ts';

/** `outageless status`: installed vs code per component, with class and reasons, plus the flags. */
export function statusCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('status'))
    .description('show installed versus code per component, the site flags and any running upgrade')
    .action((options: SiteOptions) =>
      run(
        withDatabase(options, async (database) => {
          const out = output(options);
          const [{ plan }, flags, holder] = await Promise.all([
            readPlan(database.db, { root: options.root }, { olderCode: 'report' }),
            readFlags(database.db),
            database.upgradeLock.holder(),
          ]);
          out.text(`Site: ${options.root}\nDatabase: ${database.displayUrl}${plan.siteInstalled ? '' : ' (not installed)'}`);
          const fronts = await listFronts(database.db, await readInstalled(database.db));
          // A run that died (killed, or its connection lost) cannot return its components itself.
          // status is otherwise read-only: a role that may not write still gets its report.
          const reclaimed = await reclaimStalePauses(database.db, database.upgradeLock).catch((error: unknown) => {
            out.text(`pauses left by upgrade runs that are no longer running could not be reclaimed: ${error instanceof Error ? error.message : String(error)}`);
            return [];
          });
          const componentStates = await readComponentStates(database.db);
          out.text(formatFlags(flags, holder));
          for (const pause of reclaimed) {
            out.text(`returned ${pause.component} to normal: it was paused by upgrade run ${pause.pausedByRun}, which is no longer running`);
          }
          if (componentStates.size > 0) {
            out.text(`paused components: ${[...componentStates.values()].map((c) => `${c.component} (${c.state}${c.state === 'post-install' ? ': admins only' : ''}, since ${c.since.toISOString()})`).join(', ')}`);
          }
          out.text(formatPlan(plan, { all: true }));
          out.text(fronts.length === 0 ? 'Fronts: none registered' : `Fronts:\n${fronts.map((f) => `  ${f.host} pid ${f.pid}${f.url ? ` ${f.url}` : ''}  ${f.relation}${f.differences.length ? ` (${f.differences.map((d) => `${d.component} code ${d.code ?? '-'} db ${d.installed ?? '-'}`).join(', ')})` : ''}${Object.values(f.components).some((c) => c.codeIncrement) ? `  increments: ${Object.entries(f.components).filter(([, c]) => c.codeIncrement).map(([n, c]) => `${n} ${c.codeIncrement}`).join(', ')}` : ''}`).join('\n')}`);
          const background = await readBackgroundMigrations(database.db);
          out.text(background.length === 0 ? 'Background migrations: none' : `Background migrations:\n${formatBackgroundList(background, { tty: process.stdout.isTTY === true, indent: '  ' })}`);
          const manual = await readOwedManual(database.db);
          out.text(manual.length === 0 ? 'Manual actions owed: none' : `Manual actions owed:\n${manual.map((action) => formatManualAction(action, '  ')).join('\n')}`);
          out.json({
            database: database.displayUrl,
            flags: { ...flags, maintenance: { ...flags.maintenance, enabled: flags.maintenance.enabled || holder?.mode === 'maintenance' } },
            upgradeRunning: holder ? { ...holder, since: holder.since.toISOString() } : null,
            fronts,
            componentStates: [...componentStates.values()].map((c) => ({ ...c, since: c.since.toISOString() })),
            reclaimedPauses: reclaimed.map((c) => ({ component: c.component, pausedByRun: c.pausedByRun })),
            backgroundMigrations: backgroundListToJson(background),
            manualActions: manual.map(manualActionToJson),
            ...planToJson(plan),
          });
          return ExitCode.ok;
        }),
      ),
    );
}

/** `outageless check-schema`: 0 when the live schema matches the declarations, 1 with differences, 2 when not installed. */
export function checkSchemaCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('check-schema'))
    .description('compare the live database with every component\'s db/schema.ts (0 ok, 1 differences, 2 not installed)')
    .action((options: SiteOptions) =>
      run(
        withDatabase(options, async (database) => {
          const out = output(options);
          if (!(await readInstalled(database.db))) {
            out.text(`The site in ${database.displayUrl} is not installed.`);
            out.json({ installed: false, differences: [] });
            return ExitCode.pendingOrMaintenance;
          }
          const code = await discoverSite(options.root);
          const declared = new Map<string, SchemaDefinition>();
          for (const component of code.components.values()) declared.set(component.name, await loadSchema(code, component));
          const differences = await diffSchema(database.db, declared, { exclude: isStateTable });
          if (differences.length === 0) {
            const tables = [...declared.values()].reduce((sum, schema) => sum + Object.keys(schema.tables).length, 0);
            out.text(`Schema OK: ${tables} table(s) match the declared definitions.`);
          } else {
            out.text(`${differences.length} difference(s) between the database and the declared schema:`);
            for (const difference of differences) out.text(`  - ${difference.message}`);
          }
          out.json({ installed: true, differences });
          return differences.length === 0 ? ExitCode.ok : ExitCode.error;
        }),
      ),
    );
}

interface PurgeCachesOptions extends SiteOptions {
  readonly component?: string;
}

/**
 * `outageless purge-caches [--component <name>]`: moves the global cache revision (or only
 * that component's) forward, so every front drops those caches on its next access.
 */
export function purgeCachesCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('purge-caches'))
    .description('purge caches on every front: all of them, or with --component only that component\'s')
    .option('--component <name>', 'purge only this component\'s caches; other components keep theirs')
    .action((options: PurgeCachesOptions) => run(purgeCachesAction(options)));
}

async function purgeCachesAction(options: PurgeCachesOptions): Promise<CommandResult> {
  const action = { kind: 'purge-caches', component: options.component ?? null } as const;
  // Checked before the database is opened: a typo must not create a revision row.
  const code = action.component === null ? undefined : await discoverSite(options.root);
  if (code) checkOperatorAction(code, action);
  return withDatabase(options, async (database) => {
    const out = output(options);
    const { purge: result } = await runOperatorAction({ database, loadCode: async () => code ?? discoverSite(options.root), actor: cliActor() }, action);
    if (result.kind === 'all') {
      out.text(`Caches purged (revision ${result.revision}).`);
      out.json({ purged: 'all', cacheRevision: result.revision });
    } else {
      out.text(`Caches of ${result.component} purged (revision ${result.revision}); other components keep theirs.`);
      out.json({ purged: 'component', component: result.component, revision: result.revision });
    }
    return ExitCode.ok;
  });
}
