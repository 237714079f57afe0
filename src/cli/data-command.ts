import { Command } from 'commander';
import { sql } from 'kysely';
import { discoverSite } from '../component/discover.ts';
import { errors, ExitCode } from '../errors.ts';
import { backfillStepOf, findFormat, formatCoverage, type FormatCoverage } from '../migrations/formats.ts';
import { parseMigrationName, queueBackgroundMigration, readBackgroundMigration } from '../migrations/store.ts';
import { backgroundToJson } from '../runtime/background-progress.ts';
import { ensureStateTables } from '../state/tables.ts';
import { formatBackground } from './background-command.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/**
 * `outageless data`: the data formats of db/formats.ts (read version / write version).
 * `coverage` shows how far the rows are; `backfill` re-writes the old ones as a background
 * migration.
 */

/**
 * One format's coverage as text.
 *
 * @example
 * ```ts
 * formatCoverageText(coverage)
 * // => 'mod_assign/submission  assign_submissions.format_version  read 1  write 2  75.0% at or above 2 (3 of 4 rows)\n  v1: 1  v2: 3\n  fronts: web1:4242 writes 2'
 * ```
 */
export function formatCoverageText(coverage: FormatCoverage): string {
  const versions = coverage.byVersion.length === 0 ? 'no rows' : coverage.byVersion.map((entry) => `${entry.version === null ? 'no version' : `v${entry.version}`}: ${entry.rows}`).join('  ');
  const fronts = coverage.fronts.length === 0
    ? 'no live fronts'
    : coverage.fronts.map((front) => `${front.host}:${front.pid} writes ${front.write ?? '(code without this format)'}`).join(', ');
  return `${coverage.component}/${coverage.format}  ${coverage.table}.${coverage.versionColumn}  read ${coverage.read}  write ${coverage.write}  ` +
    `${coverage.percentAtOrAboveWrite.toFixed(1)}% at or above ${coverage.write} (${coverage.atOrAboveWrite} of ${coverage.total} rows)\n  ${versions}\n  fronts: ${fronts}`;
}

function coverageSubcommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('coverage'))
    .description("per data format: rows by version, the share at or above the code's write version, and the version each live front writes")
    .action((options: SiteOptions) => {
      run((async () => {
        const code = await discoverSite(options.root);
        return withDatabase(options, async (database) => {
          const coverage = await formatCoverage(database.db, code);
          const out = output(options);
          out.text(coverage.length === 0 ? 'No data formats (no component has db/formats.ts).' : coverage.map(formatCoverageText).join('\n'));
          out.json({ formats: coverage });
          return ExitCode.ok;
        });
      })());
    });
}

function backfillSubcommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('backfill'))
    .description("re-write rows below the code's write version with the format's backfill function, as a background migration (see `outageless background`)")
    .argument('<format>', '<component>/<format>')
    .action((name: string, options: SiteOptions) => {
      // Parsed before anything is opened: a malformed name changes nothing.
      const parsed = parseMigrationName(name);
      if (!parsed) throw errors.usage(`expected a data format as <component>/<format> (e.g. mod_assign/submission), got "${name}"`);
      run((async () => {
        const code = await discoverSite(options.root);
        const { component, format } = await findFormat(code, parsed.component, parsed.id);
        const step = backfillStepOf(component, format);
        return withDatabase(options, async (database) => {
          await ensureStateTables(database.db);
          const out = output(options);
          const migrationName = `${component.name}/${step.id}`;
          const result = await database.db.transaction().execute(async (trx) => {
            const existing = await readBackgroundMigration(trx, component.name, step.id);
            if (existing?.state === 'finished' || existing?.state === 'cancelled') {
              // Rows written below the version since (by a front still on the old code) lie
              // beyond the range read then: a new pass reads the range again.
              const { rows: [left] } = await sql<{ n: string }>`select count(*) as n from ${sql.table(format.table)}
                where ${sql.ref(format.versionColumn)} is null or ${sql.ref(format.versionColumn)} < ${format.write}`.execute(trx);
              if (Number(left?.n ?? 0) === 0) return { queued: false, migration: existing };
              await sql`delete from outageless_background_migration where component = ${component.name} and id = ${step.id}`.execute(trx);
            }
            return queueBackgroundMigration(trx, { component: component.name, step });
          });
          const migration = result.migration;
          out.text(result.queued
            ? `Queued ${migrationName}: fronts and \`outageless worker\` work it in batches; \`outageless background status\` shows its progress, \`pause\`/\`resume\`/\`finish ${migrationName}\` steer it.`
            : `${migrationName} is already ${migration.state}: \`outageless background status\` shows its progress.`);
          out.text(formatBackground(migration, { tty: false, indent: '  ' }));
          out.json({ queued: result.queued, migration: backgroundToJson(migration) });
          return ExitCode.ok;
        });
      })());
    });
}

/**
 * `outageless data coverage|backfill`.
 *
 * @example
 * ```ts
 * program.addCommand(dataCommand(run))
 * ```
 */
export function dataCommand(run: (result: Promise<CommandResult>) => void): Command {
  return new Command('data')
    .description('data formats of db/formats.ts: coverage by version, and backfills of old rows')
    .addCommand(coverageSubcommand(run))
    .addCommand(backfillSubcommand(run));
}
