import { Command } from 'commander';
import { errorFactory, errors, ExitCode } from '../errors.ts';
import { formatDuration } from '../runtime/background-progress.ts';
import { findUpgradeRun, formatRunDuration, readRunEvents, readUpgradeRuns, runToJson, type ComponentSummary, type UpgradeRunRecord } from '../state/upgrade-history.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/**
 * `outageless history`: the upgrade runs, newest first, from outageless_upgrade_run and the
 * upgrade log: mode, phase, start, duration, outcome, per component the steps applied,
 * skipped and failed with their durations, and the failures with their errors. `--run` shows
 * one run in detail (every step, and its recorded progress lines).
 */

interface HistoryFlags extends SiteOptions {
  readonly limit?: string;
  readonly run?: string;
}

export const historyErrors = {
  /** `--run` names no run, or a prefix several runs share. */
  unknownRun: errorFactory('OUTAGELESS_ERR_UNKNOWN_RUN', (given: string, matches: readonly string[]) => ({
    message: matches.length === 0 ? `no upgrade run "${given}"` : `"${given}" is the start of ${matches.length} run ids: ${matches.join(', ')}`,
    location: { field: '--run' },
    exitCode: ExitCode.usage,
    hint: matches.length === 0 ? 'Run `outageless history` for the run ids (the first 8 characters are enough).' : 'Give more characters of the run id.',
  })),
};

/** `2026-12-02 06:10:03 +01:00` in this machine's time zone. */
export function formatLocalTime(date: Date): string {
  const pad = (n: number) => String(Math.trunc(Math.abs(n))).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const zone = `${offset < 0 ? '-' : '+'}${pad(offset / 60)}:${pad(offset % 60)}`;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
}

/** `3 min 5 s ago`, or `just now`. */
export function formatAge(date: Date, now: Date = new Date()): string {
  const seconds = (now.getTime() - date.getTime()) / 1000;
  return seconds < 1 ? 'just now' : `${formatDuration(seconds)} ago`;
}

const ms = formatRunDuration;

function describeMode(run: UpgradeRunRecord): string {
  if (!run.recorded) return 'mode not recorded';
  return `${run.mode} mode, phase ${run.phase}, by ${run.startedBy} on ${run.host} pid ${run.pid}`;
}

function describeStatus(run: UpgradeRunRecord): string {
  switch (run.status) {
    case 'running':
      return 'RUNNING';
    case 'interrupted':
      return 'INTERRUPTED (its process ended without finishing; the next upgrade resumes it)';
    case 'nothing':
      return 'nothing to do';
    default:
      return run.status;
  }
}

function componentLine(summary: ComponentSummary): string {
  const parts = [`${summary.applied.count} applied (${ms(summary.applied.durationMs)})`, `${summary.skipped.count} skipped`];
  if (summary.failed.count > 0) parts.push(`${summary.failed.count} FAILED (${ms(summary.failed.durationMs)})`);
  return `  ${summary.component}${summary.result ? ` ${summary.result} at ${summary.version}` : ''} in ${ms(summary.durationMs)}: ${parts.join(', ')}`;
}

function runHeader(run: UpgradeRunRecord, now: Date): string {
  const took = run.durationMs === null ? (run.status === 'running' ? `running for ${formatDuration((now.getTime() - run.startedAt.getTime()) / 1000)}` : 'no end recorded') : `took ${ms(run.durationMs)}`;
  return `Run ${run.runId.slice(0, 8)}  ${describeStatus(run)}  started ${formatLocalTime(run.startedAt)} (${formatAge(run.startedAt, now)}), ${took}; ${describeMode(run)}`;
}

function failureLines(run: UpgradeRunRecord): string[] {
  const lines = run.log.filter((entry) => entry.status === 'failed').map((entry) => `  failed: ${entry.component}${entry.step ? ` step ${entry.step}` : ''} (${entry.version}) after ${ms(entry.durationMs)}: ${entry.error ?? 'no error recorded'}`);
  if (run.error && lines.length === 0) lines.push(`  failed: ${run.error.code ? `${run.error.code}: ` : ''}${run.error.message}`);
  return lines;
}

function formatRuns(runs: readonly UpgradeRunRecord[], now: Date): string {
  if (runs.length === 0) return 'No upgrade has run on this site yet.';
  return runs.map((run) => [runHeader(run, now), ...run.components.map(componentLine), ...failureLines(run)].join('\n')).join('\n\n');
}

function formatRun(run: UpgradeRunRecord, events: readonly { at: Date; message: string }[], now: Date): string {
  const lines = [runHeader(run, now), `  run id ${run.runId}`];
  if (run.error) lines.push(`  error: ${run.error.code ? `${run.error.code}: ` : ''}${run.error.message}`);
  lines.push('', 'Components:', ...(run.components.length > 0 ? run.components.map(componentLine) : ['  none changed']));
  lines.push('', 'Steps:');
  if (run.log.length === 0) lines.push('  none logged');
  for (const entry of run.log) {
    lines.push(`  ${formatLocalTime(entry.startedAt)}  ${entry.component}${entry.step ? ` step ${entry.step}` : ''} (${entry.version}) ${entry.status}${entry.outage ? `, class ${entry.outage}` : ''}, ${ms(entry.durationMs)}${entry.error ? `: ${entry.error}` : ''}`);
  }
  lines.push('', 'Progress:');
  if (events.length === 0) lines.push(run.recorded ? '  no progress lines kept (only the newest 50 runs keep theirs)' : '  not recorded (an older run)');
  for (const event of events) lines.push(`  ${formatLocalTime(event.at)}  ${event.message}`);
  return lines.join('\n');
}

/**
 * `outageless history [--limit <n>] [--run <id>] [--json]`.
 *
 * @example
 * ```ts
 * new Command('outageless').addCommand(historyCommand(run))
 * ```
 */
export function historyCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('history'))
    .description('upgrade runs, newest first: mode, start, duration, outcome, steps per component and failures')
    .option('--limit <n>', 'show the newest n runs (default 20)')
    .option('--run <id>', 'one run in detail: every step and its progress lines (the first characters of the id are enough)')
    .action((flags: HistoryFlags) => run(history(flags)));
}

async function history(flags: HistoryFlags): Promise<CommandResult> {
  const limit = flags.limit === undefined ? 20 : Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1) throw errors.usage(`--limit expects a whole number of runs (at least 1), got "${flags.limit}"`);
  if (flags.run !== undefined && flags.limit !== undefined) throw errors.usage('--run and --limit exclude each other: --run shows one run');
  if (flags.run !== undefined && !/^[0-9a-f-]{1,40}$/i.test(flags.run)) throw historyErrors.unknownRun(flags.run, []);
  const out = output(flags);
  return withDatabase(flags, async (database) => {
    const now = new Date();
    if (flags.run !== undefined) {
      const found = await findUpgradeRun(database.db, flags.run, { lock: database.upgradeLock });
      if (found.kind !== 'found') throw historyErrors.unknownRun(flags.run, found.kind === 'ambiguous' ? found.matches : []);
      const events = await readRunEvents(database.db, found.run.runId);
      out.text(formatRun(found.run, events, now));
      out.json({ run: { ...runToJson(found.run), events: events.map((event) => ({ ...event, at: event.at.toISOString() })) } });
      return ExitCode.ok;
    }
    const runs = await readUpgradeRuns(database.db, { limit, lock: database.upgradeLock });
    out.text(formatRuns(runs, now));
    out.json({ runs: runs.map(runToJson) });
    return ExitCode.ok;
  });
}
