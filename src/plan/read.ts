import type { Kysely } from 'kysely';
import { discoverSite, type SiteCode } from '../component/discover.ts';
import { readAppliedSteps, readInstalled } from '../state/installed.ts';
import { readSchemaShape } from '../schema/online-safety.ts';
import { isStateTable } from '../state/tables.ts';
import { readBackgroundMigrations } from '../migrations/store.ts';
import type { BackgroundMigration } from '../migrations/types.ts';
import { readOwedSteps } from '../state/owed-steps.ts';
import { readOwedManual } from '../migrations/manual.ts';
import { buildPlan, type Plan, type PrerequisiteStates } from './plan.ts';

/**
 * Reads the code under `root` (or reuses `code`) and the installed state in `db`, and
 * builds the plan. Read-only. `olderCode: 'report'` shows code older than the database as
 * `behind` instead of refusing it as a downgrade (for `status` on a host not yet updated).
 *
 * @example
 * ```ts
 * const { plan } = await readPlan(db, { root: 'examples/lms/releases/2' })
 * plan.pending.map((item) => `${item.component}: ${item.outage}`)
 * ```
 */
export async function readPlan(
  db: Kysely<any>,
  source: { root: string } | { code: SiteCode },
  options: { olderCode?: 'throw' | 'report' } = {},
): Promise<{ code: SiteCode; plan: Plan }> {
  const code = 'code' in source ? source.code : await discoverSite(source.root);
  const [installed, appliedSteps] = await Promise.all([readInstalled(db), readAppliedSteps(db)]);
  // What the installed release reads, for verifying steps declared `none` against it: only
  // the tables those steps touch (none when no such step is pending, as on most deploys).
  const readLiveSchema = installed ? (tables: readonly string[]) => readSchemaShape(db, isStateTable, tables) : undefined;
  const prerequisites = installed ? await readPrerequisites(db) : undefined;
  return { code, plan: await buildPlan({ code, installed, appliedSteps, ...(readLiveSchema ? { readLiveSchema } : {}), ...(prerequisites ? { prerequisites } : {}), olderCode: options.olderCode ?? 'throw' }) };
}

/** Background migrations and owed post steps, as the finalization gates judge them. */
export async function readPrerequisites(db: Kysely<any>): Promise<PrerequisiteStates> {
  const [migrations, owedPost, owedManual] = await Promise.all([readBackgroundMigrations(db), readOwedSteps(db), readOwedManual(db)]);
  return {
    owedManual: new Set(owedManual.map((action) => `${action.component}/${action.id}`)),
    background: new Map(migrations.map((migration) => [`${migration.component}/${migration.id}`, { state: migration.state, progress: describeProgress(migration) }])),
    owedPost,
  };
}

/** `42% (4,200 of 10,000 keys)`. */
export function describeProgress(migration: BackgroundMigration): string {
  if (migration.minKey === null || migration.maxKey === null) return '100% (an empty table)';
  const total = migration.maxKey - migration.minKey + 1;
  const done = migration.cursor === null ? 0 : Math.min(total, migration.cursor - migration.minKey + 1);
  return `${Math.floor((done / total) * 100)}% (${done.toLocaleString('en')} of ${total.toLocaleString('en')} keys)`;
}
