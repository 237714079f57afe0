import { Command } from 'commander';
import { discoverSite } from '../component/discover.ts';
import { errors, ExitCode } from '../errors.ts';
import { readPlan } from '../plan/read.ts';
import { cliActor, runOperatorAction } from '../runtime/operator-actions.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';
import { formatPlan, planToJson, purgeCommands } from './format.ts';

interface UpgradeFlags extends SiteOptions {
  readonly nonInteractive?: boolean;
  readonly isPending?: boolean;
  readonly isMaintenanceRequired?: boolean;
  readonly maintenance: boolean;
  readonly outage: boolean;
  readonly setUiUpgradeLock?: boolean;
  readonly unsetUiUpgradeLock?: boolean;
  readonly allowUnstable?: boolean;
  readonly wait?: string;
  readonly purgeOwnCaches?: boolean;
  readonly lockTimeout?: string;
  readonly lockWait?: string;
  readonly phase?: string;
}

/** `outageless upgrade`: Moodle's admin/cli/upgrade.php flags and exit codes (DESIGN §4.2). */
export function upgradeCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('upgrade'))
    .description('install or upgrade the site; with --is-pending / --is-maintenance-required, only report')
    .option('--non-interactive', 'do not ask for confirmation')
    .option('--is-pending', 'exit 2 if an upgrade is pending, 0 if not; changes nothing')
    .option('--is-maintenance-required', 'exit 0 if nothing is pending, 2 if maintenance is required, 3 if pending without maintenance')
    .option('--no-maintenance', 'upgrade while fronts keep serving; refuse (exit 2) if the plan needs maintenance')
    .option('--no-outage', 'alias of --no-maintenance')
    .option('--set-ui-upgrade-lock', 'stop the web UI from offering or starting upgrades')
    .option('--unset-ui-upgrade-lock', 'let the web UI offer upgrades again')
    .option('--allow-unstable', 'allow components whose maturity is not stable')
    .option('--wait <seconds>', 'wait this long for another running upgrade instead of failing')
    .option('--lock-timeout <ms>', 'lock_timeout of each DDL attempt: the longest traffic may queue behind a step (default 200)')
    .option('--lock-wait <seconds>', 'total lock wait of one step over all its retries; past it the step fails cleanly, naming who blocks it (default 60)')
    .option('--phase <phase>', 'pre: only the pending pre (expand) steps, with every front serving; post: only the owed post (contract) steps no live old front holds back')
    .option('--purge-own-caches', 'with --no-maintenance: purge at once the caches of components whose metadata asked for "own" (an "all" purge is still only printed)')
    .action((flags: UpgradeFlags) => run(upgrade(flags)));
}

/** Two flags given together that ask for contradicting things, and why they do. */
interface FlagConflict {
  readonly first: string;
  readonly second: string;
  readonly why: string;
}

/**
 * The first pair of given flags that contradict each other. Checked before the database is
 * opened, so a contradicting command line changes nothing. The report modes run no upgrade, so
 * flags that only mean something for a run are refused with them rather than ignored;
 * `--is-maintenance-required` may still set or clear the UI lock, as in Moodle.
 */
function conflictingFlags(flags: UpgradeFlags): FlagConflict | undefined {
  // --no-outage is an alias of --no-maintenance: name the one that was typed.
  const online = flags.maintenance === false ? '--no-maintenance' : flags.outage === false ? '--no-outage' : undefined;
  const pending = '--is-pending only reports and runs no upgrade';
  const required = '--is-maintenance-required only reports and runs no upgrade';
  const pairs: readonly (readonly [string | false | undefined, string | false | undefined, string])[] = [
    [flags.isPending && '--is-pending', flags.isMaintenanceRequired && '--is-maintenance-required', 'each is a report with its own exit codes; pass one'],
    [flags.isPending && '--is-pending', online, `${pending}, with or without maintenance`],
    [flags.isPending && '--is-pending', flags.setUiUpgradeLock && '--set-ui-upgrade-lock', `${pending} and changes nothing; --is-maintenance-required may set the UI lock`],
    [flags.isPending && '--is-pending', flags.unsetUiUpgradeLock && '--unset-ui-upgrade-lock', `${pending} and changes nothing; --is-maintenance-required may clear the UI lock`],
    [flags.isPending && '--is-pending', flags.purgeOwnCaches && '--purge-own-caches', `${pending}, so there are no caches to purge after it`],
    [flags.isMaintenanceRequired && '--is-maintenance-required', online, `${required}; its exit code says whether --no-maintenance would be accepted`],
    [flags.isMaintenanceRequired && '--is-maintenance-required', flags.purgeOwnCaches && '--purge-own-caches', `${required}, so there are no caches to purge after it`],
    [flags.setUiUpgradeLock && '--set-ui-upgrade-lock', flags.unsetUiUpgradeLock && '--unset-ui-upgrade-lock', 'the UI upgrade lock cannot be both set and cleared'],
    [flags.isPending && '--is-pending', flags.phase !== undefined && '--phase', `${pending}; its exit code covers every phase`],
    [flags.isMaintenanceRequired && '--is-maintenance-required', flags.phase !== undefined && '--phase', `${required}; a pre or post phase never needs maintenance to be decided`],
  ];
  for (const [first, second, why] of pairs) {
    if (first && second) return { first, second, why };
  }
  return undefined;
}

async function upgrade(flags: UpgradeFlags): Promise<CommandResult> {
  if (flags.phase !== undefined && flags.phase !== 'pre' && flags.phase !== 'post') throw errors.usage(`--phase expects "pre" or "post", got "${flags.phase}"`);
  const phase = (flags.phase ?? 'all') as 'all' | 'pre' | 'post';
  const conflict = conflictingFlags(flags);
  if (conflict) throw errors.usage(`${conflict.first} and ${conflict.second} exclude each other: ${conflict.why}`);
  const waitSeconds = flags.wait === undefined ? 0 : Number(flags.wait);
  if (!Number.isFinite(waitSeconds) || waitSeconds < 0) throw errors.usage(`--wait expects a number of seconds, got "${flags.wait}"`);
  const lockTimeoutMs = flags.lockTimeout === undefined ? undefined : Number(flags.lockTimeout);
  if (lockTimeoutMs !== undefined && (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1)) throw errors.usage(`--lock-timeout expects a whole number of milliseconds (at least 1), got "${flags.lockTimeout}"`);
  const lockWaitSeconds = flags.lockWait === undefined ? undefined : Number(flags.lockWait);
  if (lockWaitSeconds !== undefined && (!Number.isFinite(lockWaitSeconds) || lockWaitSeconds < 0)) throw errors.usage(`--lock-wait expects a number of seconds, got "${flags.lockWait}"`);
  const out = output(flags);

  return withDatabase(flags, async (database) => {
    const code = await discoverSite(flags.root);
    // The same action, rules and operator log as the admin console's UI lock button.
    const uiLock = (locked: boolean) => runOperatorAction({ database, loadCode: async () => code, actor: cliActor() }, { kind: 'ui-lock', locked });

    if (flags.isPending || flags.isMaintenanceRequired) {
      const { plan } = await readPlan(database.db, { code });
      const pending = plan.pending.length > 0;
      if (flags.isPending) {
        out.text(formatPlan(plan));
        out.json(planToJson(plan));
        return pending ? ExitCode.pendingOrMaintenance : ExitCode.ok;
      }
      if (flags.unsetUiUpgradeLock) await uiLock(false);
      let exit: CommandResult = ExitCode.ok;
      if (pending && plan.maintenanceRequired) exit = ExitCode.pendingOrMaintenance;
      else if (pending) {
        exit = ExitCode.pendingWithoutMaintenance;
        if (flags.setUiUpgradeLock) await uiLock(true);
      }
      out.text(formatPlan(plan));
      if (exit === ExitCode.pendingOrMaintenance) out.text(`Maintenance IS required:\n${plan.maintenanceReasons.map((r) => `  - ${r}`).join('\n')}`);
      if (exit === ExitCode.pendingWithoutMaintenance) {
        out.text(`Maintenance is NOT required.${flags.setUiUpgradeLock ? ' UI upgrade lock set.' : ''}`);
        if (plan.pauses.length > 0) out.text(`A --no-maintenance upgrade pauses these components one at a time while the rest of the site serves: ${plan.pauses.join(', ')}`);
      }
      if (flags.unsetUiUpgradeLock) out.text('UI upgrade lock cleared.');
      out.json({ ...planToJson(plan), uiUpgradeLock: flags.setUiUpgradeLock && exit === ExitCode.pendingWithoutMaintenance ? true : flags.unsetUiUpgradeLock ? false : undefined });
      return exit;
    }

    // Only a real run needs the runner, the front registry, the job queue and the prompt:
    // `--is-pending` on every deploy should not pay for loading them.
    const [{ runUpgrade }, { purgeCaches }, { readInstalled }, { listFronts }, { describeUpgradeEvent }, { confirm }, { waitForInFlightJobs }] = await Promise.all([
      import('../upgrade/run.ts'),
      import('../caches/purge.ts'),
      import('../state/installed.ts'),
      import('../runtime/front-registry.ts'),
      import('../upgrade/describe-event.ts'),
      import('./confirm.ts'),
      import('../jobs/in-flight.ts'),
    ]);
    const mode = flags.maintenance && flags.outage ? 'maintenance' : 'online';
    const result = await runUpgrade({
      database,
      code,
      mode,
      phase,
      // Post steps wait for old fronts: the registry says who runs which versions.
      liveFronts: async () => listFronts(database.db, await readInstalled(database.db)),
      waitSeconds,
      ...(lockTimeoutMs === undefined ? {} : { lockTimeoutMs }),
      ...(lockWaitSeconds === undefined ? {} : { lockWaitMs: lockWaitSeconds * 1000 }),
      allowUnstable: flags.allowUnstable ?? false,
      // Named in the run's history row and in the admin banner of every front while it runs.
      startedBy: 'cli',
      // A paused component's events already being processed finish before its steps run.
      drainComponent: (component) => waitForInFlightJobs(database, [component, ...[...code.components.values()].filter((c) => c.parent === component).map((c) => c.name)], { timeoutMs: 60_000 }),
      onEvent: (event) => out.text(describeUpgradeEvent(event)),
      confirm: async (plan) => {
        out.text(formatPlan(plan));
        const accepted = flags.nonInteractive || (await confirm(mode === 'online' ? 'Upgrade now, without maintenance?' : 'Upgrade now? The site goes into maintenance while it runs.'));
        // The UI lock is taken only once the run is going ahead, so a refused run changes nothing.
        if (accepted && flags.setUiUpgradeLock) await uiLock(true);
        return accepted;
      },
    });
    if (flags.unsetUiUpgradeLock) await uiLock(false);

    if (result.kind === 'nothing-to-do') {
      out.text(phase === 'pre' ? 'No pre step is pending: nothing to do.' : phase === 'post' ? 'No post step is owed: nothing to do.' : 'No upgrade is pending: nothing to do.');
      out.json({ result: 'nothing-to-do', ...planToJson(result.plan) });
      return ExitCode.ok;
    }
    let purge = result.purged ? [] : purgeCommands(result.purgeCaches);
    // The operator accepts per-component purges right away; a full purge stays theirs to run after cutover.
    const ownPurged: { component: string; revision: number }[] = [];
    if (!result.purged && flags.purgeOwnCaches && result.purgeCaches.kind === 'own') {
      for (const component of result.purgeCaches.components) ownPurged.push({ component, revision: (await purgeCaches(database.db, { kind: 'component', component })).revision });
      purge = [];
    }
    out.text(
      result.phase === 'pre'
        ? `Pre steps done in ${(result.preDurationMs / 1000).toFixed(2)} s, with every front serving. New code may now take traffic.`
        : result.phase === 'post'
          ? `Post phase done in ${(result.durationMs / 1000).toFixed(2)} s.`
          : `Upgrade complete in ${(result.durationMs / 1000).toFixed(2)} s (${result.plan.pending.length} component(s), ${result.mode === 'online' ? 'no maintenance' : 'maintenance mode'}).`,
    );
    if (result.phase === 'all' && result.preDurationMs > 0) {
      out.text(`Pre steps: ${(result.preDurationMs / 1000).toFixed(2)} s with fronts serving; main steps: ${(result.mainDurationMs / 1000).toFixed(2)} s${result.mode === 'maintenance' ? ' in maintenance (the window)' : ''}.`);
    }
    for (const applied of result.postApplied) out.text(`Post step ${applied.component}/${applied.step} applied.`);
    if (result.postHeldBack.length > 0) {
      out.text(`Post steps still owed; run \`outageless upgrade --phase post\` once nothing holds them back:`);
      for (const held of result.postHeldBack) {
        out.text(`  ${held.component}/${held.step} (${held.version}): ${held.reason}${held.fronts.map((f) => `\n    front ${f.host} pid ${f.pid}${f.url ? ` ${f.url}` : ''} runs ${held.component} ${f.components[held.component]?.version}`).join('')}`);
      }
    }
    for (const pause of result.pauses) out.text(`Paused ${pause.component} for ${(pause.pausedMs / 1000).toFixed(2)} s${pause.leftIn === 'post-install' ? ' (left in post-install)' : ''}.`);
    if (result.purged) out.text(result.purgeCaches.kind === 'own' ? `Caches of ${result.purgeCaches.components.join(', ')} purged.` : 'Caches purged.');
    if (ownPurged.length > 0) out.text(`Caches purged (--purge-own-caches):\n${ownPurged.map((p) => `  outageless purge-caches --component ${p.component}    # done: revision ${p.revision}`).join('\n')}`);
    if (purge.length > 0) out.text(`Purge caches after all traffic runs the new code:\n${purge.map((c) => `  ${c}`).join('\n')}`);
    out.json({ result: 'upgraded', runId: result.runId, mode: result.mode, durationMs: Math.round(result.durationMs), purged: result.purged || ownPurged.length > 0, purgedComponents: ownPurged, purgeCommands: purge, ...planToJson(result.plan), pauses: result.pauses.map((p) => ({ ...p, pausedMs: Math.round(p.pausedMs) })), phase: result.phase, preDurationMs: Math.round(result.preDurationMs), mainDurationMs: Math.round(result.mainDurationMs), postApplied: result.postApplied, postHeldBack: result.postHeldBack });
    return ExitCode.ok;
  });
}
