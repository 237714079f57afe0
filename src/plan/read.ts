import type { Kysely } from 'kysely';
import { discoverSite, type SiteCode } from '../component/discover.ts';
import { readAppliedSteps, readInstalled } from '../state/installed.ts';
import { readSchemaShape } from '../schema/online-safety.ts';
import { isStateTable } from '../state/tables.ts';
import { buildPlan, type Plan } from './plan.ts';

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
  // What the installed release reads, for verifying steps declared `none` against it.
  const liveSchema = installed ? await readSchemaShape(db, isStateTable) : undefined;
  return { code, plan: await buildPlan({ code, installed, appliedSteps, liveSchema, olderCode: options.olderCode ?? 'throw' }) };
}
