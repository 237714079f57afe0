import { resolve } from 'node:path';
import { Command } from 'commander';
import { discoverSite } from '../component/discover.ts';
import { parseDatabaseUrl, resolveDatabaseUrl } from '../database/url.ts';
import { errors } from '../errors.ts';
import { DEFAULT_LOCK_BUDGET_MS, DEFAULT_REHEARSAL_ROWS, rehearse, type RehearsalReport, type StepRehearsal } from '../rehearse/rehearse.ts';
import { rehearseErrors } from '../rehearse/errors.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

interface RehearseFlags extends SiteOptions {
  readonly rows?: string;
  readonly lockTimeout?: string;
}

/**
 * `outageless rehearse`: runs the pending steps on a scratch copy of the live schema and
 * reports, per step, the observed and declared outage class and the time at live size.
 * Exit 0 when everything agrees, 1 on error, 2 when a step is more dangerous than declared
 * or the steps do not produce `db/schema.ts`.
 *
 * @example
 * ```sh
 * outageless rehearse --root /srv/lms --database postgres://lms@db/lms --rows 5000
 * ```
 */
export function rehearseCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('rehearse'))
    .description('run the pending steps on a scratch copy of the live schema: observed vs declared outage class, locks, rewrites, time at live size, and the result vs db/schema.ts (0 agrees, 1 error, 2 more dangerous than declared or schema mismatch)')
    .option('--rows <n>', `rows generated per table of the scratch copy (0: classes and schema only, no timing; default ${DEFAULT_REHEARSAL_ROWS})`)
    .option('--lock-timeout <ms>', `lock timeout of the steps, as upgrade --lock-timeout sets it, and the lock budget: a lock that blocks writes for longer than this at live size is an outage (default ${DEFAULT_LOCK_BUDGET_MS})`)
    .action((flags: RehearseFlags) => run(rehearseAction(flags)));
}

function integerFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) throw errors.usage(`${name} expects a whole number from ${min} to ${max}, got "${value}"`);
  return number;
}

async function rehearseAction(flags: RehearseFlags): Promise<CommandResult> {
  const rows = integerFlag('--rows', flags.rows, 0, 1_000_000);
  const lockTimeoutMs = integerFlag('--lock-timeout', flags.lockTimeout, 1, 600_000);
  const url = resolveDatabaseUrl({ root: resolve(flags.root), option: flags.database });
  const location = parseDatabaseUrl(url);
  // Refused before anything opens: the embedded database would be claimed for nothing.
  if (location.kind !== 'postgres') throw rehearseErrors.needsPostgres(url);
  const out = output(flags);
  return withDatabase(flags, async (database) => {
    const code = await discoverSite(flags.root);
    const report = await rehearse({
      database,
      url: location.url,
      code,
      ...(rows === undefined ? {} : { rows }),
      ...(lockTimeoutMs === undefined ? {} : { lockBudgetMs: lockTimeoutMs, lockTimeoutMs }),
      onProgress: (message) => out.text(`… ${message}`),
    });
    out.text(formatReport(report));
    out.json(reportToJson(report));
    if (report.failure) process.stderr.write(`${report.failure.describe()}\n`);
    return report.exitCode;
  });
}

function formatStep(step: StepRehearsal): string[] {
  const planned = step.planned === step.declared ? '' : ` (the plan raises it to ${step.planned})`;
  const head = `  ${step.id} (${step.version}, ${step.phase}, runs ${step.runs}): declared ${step.declared}, observed ${step.observed}${planned}`;
  if (step.status === 'skipped') return [`${head} - skipped: already applied under another version`];
  const time = `${step.durationMs} ms here, ~${step.scaledDurationMs} ms at live size${step.scaled ? '' : ' (not scaled: a table it works on has no rehearsal rows)'}`;
  const lines = [`${head}${step.status === 'failed' ? ' - FAILED' : ''}`, `    time: ${time}; ${step.statements.length} statement(s), ${step.rowsTouched} row(s) touched`];
  const strongest = new Map<string, (typeof step.locks)[number]>();
  for (const lock of step.locks) {
    const key = `${lock.table} ${lock.mode}`;
    const seen = strongest.get(key);
    if (!seen || lock.scaledHeldMs > seen.scaledHeldMs) strongest.set(key, lock);
  }
  for (const lock of strongest.values()) lines.push(`    lock: ${lock.mode} on ${lock.table} held ${lock.heldMs} ms (~${lock.scaledHeldMs} ms at live size)`);
  for (const rewrite of step.rewrites) lines.push(`    rewrite: ${rewrite.table} (relfilenode ${rewrite.before} -> ${rewrite.after})`);
  for (const reason of step.reasons) lines.push(`    ${reason.outage}: ${reason.message}`);
  for (const line of step.log) lines.push(`    log: ${line}`);
  if (step.warning) lines.push(`    WARNING: declared ${step.declared}, but the rehearsal observed ${step.observed}`);
  return lines;
}

function formatReport(report: RehearsalReport): string {
  const lines = [
    `Rehearsal on ${report.scratchSchema}, a copy of schema ${report.liveSchema} (${report.tables.length} table(s), ${report.rows} generated row(s) per table; times scaled to pg_class.reltuples; lock budget ${report.lockBudgetMs} ms)`,
  ];
  for (const table of report.tables) if (table.note) lines.push(`  table ${table.name}: ${table.note}`);
  if (report.installed.length > 0) lines.push(`New components created from db/schema.ts: ${report.installed.join(', ')}`);
  if (report.steps.length === 0) lines.push('No pending upgrade steps.');
  let component: string | undefined;
  for (const step of report.steps) {
    if (step.component !== component) lines.push((component = step.component));
    lines.push(...formatStep(step));
  }
  if (!report.schema.compared) lines.push('Schema not compared: the steps did not run to the end.');
  else if (report.schema.matches) lines.push('Schema after the steps: matches every db/schema.ts.');
  else {
    lines.push(`Schema after the steps: ${report.schema.differences.length} difference(s) from db/schema.ts:`);
    for (const difference of report.schema.differences) lines.push(`  - ${difference.message}`);
  }
  if (report.schema.drift.length > 0) {
    lines.push(`The live schema already differs from db/schema.ts of components without pending steps (not caused by these steps):`);
    for (const difference of report.schema.drift) lines.push(`  - ${difference.message}`);
  }
  if (report.warnings.length > 0) {
    lines.push(`${report.warnings.length} warning(s):`);
    for (const warning of report.warnings) lines.push(`  - ${warning}`);
  } else if (!report.failure) {
    lines.push('Rehearsal agrees: every step is as safe as it declares, and the result is db/schema.ts.');
  }
  lines.push(`The scratch schema ${report.scratchSchema} was dropped; the live schema was only read.`);
  return lines.join('\n');
}

function reportToJson(report: RehearsalReport): unknown {
  return { ...report, failure: report.failure ? report.failure.toJSON() : null };
}
