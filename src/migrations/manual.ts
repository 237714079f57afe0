import type { Kysely } from 'kysely';
import { join } from 'node:path';
import type { ManualStep } from '../component/definitions.ts';
import type { SiteCode } from '../component/discover.ts';
import { loadUpgrade } from '../component/files.ts';
import type { SiteDatabase } from '../database/open.ts';
import { errorFactory, errors, ExitCode } from '../errors.ts';
import { createSchemaHelpers } from '../schema/postgres-helpers.ts';
import { appendLog } from '../state/installed.ts';
import { readOwedSteps } from '../state/owed-steps.ts';
import { ensureStateTables, tableExists } from '../state/tables.ts';
import { findBackgroundStep } from './engine.ts';
import { queueBackgroundMigration, readBackgroundMigrations } from './store.ts';

/**
 * Manual actions (`phase: 'manual'` steps, Totara's "temporary manual upgrade steps"): the
 * runner never runs them; it records them as owed when it reaches their version, in the
 * step's savepoint transaction. An operator runs one with `outageless manual run` (or "Run
 * now" on `/admin`), under the upgrade lock, in one transaction with its log row, so it is
 * applied exactly once. Logged with status `applied` under its id, a later release's `main`
 * or `background` step with the same id is then skipped ("already applied under another
 * version"); if nobody ran it, that step runs automatically and clears the owed row.
 *
 * `check` (and `GET /admin/checks`) lists everything owed: manual actions, post steps and
 * unfinished or failed background migrations, each with the command that acts on it.
 */

/** Codes are part of the public contract (runbooks grep for them): never rename one. */
export const manualErrors = {
  /** `manual run` of an action that is not owed on this site (never reached, or no such id). */
  unknownAction: errorFactory('OUTAGELESS_ERR_UNKNOWN_MANUAL_ACTION', (component: string, id: string, owed: readonly string[]) => ({
    message: `no manual action ${component}/${id} is owed on this site${owed.length > 0 ? ` (owed: ${owed.join(', ')})` : ' (none is owed)'}`,
    location: { component, step: id },
    hint: 'A manual action becomes owed when `outageless upgrade` reaches its version; `outageless manual list` shows the owed ones. Name one as <component>/<id>.',
  })),
  /** `manual run` of an action already run: it runs once. */
  alreadyRun: errorFactory('OUTAGELESS_ERR_MANUAL_ACTION_ALREADY_RUN', (component: string, id: string, at: Date) => ({
    message: `manual action ${component}/${id} was already run (${at.toISOString()}): it runs once`,
    location: { component, step: id },
    hint: 'Nothing to do. `outageless manual list` shows the actions still owed.',
  })),
  /** The action is owed but the code on disk no longer has it. */
  notOnDisk: errorFactory('OUTAGELESS_ERR_MANUAL_ACTION_NOT_ON_DISK', (component: string, id: string, file: string) => ({
    message: `manual action ${component}/${id} is owed, but ${file} has no phase: 'manual' step with id "${id}"`,
    location: { component, step: id, file },
    hint: 'Run it with the code of the release that declares it, or upgrade to a release that carries the same id as a main or background step.',
  })),
  /** The action's `run` threw: its transaction rolled back, it stays owed. */
  failed: errorFactory('OUTAGELESS_ERR_MANUAL_ACTION_FAILED', (component: string, id: string, file: string, cause: unknown) => ({
    message: `manual action ${component}/${id} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
    location: { component, step: id, file },
    hint: 'Its changes rolled back and it is still owed: fix the cause and run `outageless manual run` again.',
    exitCode: ExitCode.error,
    cause,
  })),
};

/** A manual action waiting for an operator. */
export interface OwedManualAction {
  readonly component: string;
  readonly id: string;
  readonly version: number;
  readonly description: string;
  readonly estimate: string;
  readonly since: Date;
}

/**
 * Records a manual action as owed (in the savepoint transaction of its version).
 *
 * @example
 * ```ts
 * await recordOwedManual(trx, 'mod_quiz', { id: 'quiz_regrade_all', version: 2026070100, description: 'Regrade', estimate: '1 minute' })
 * ```
 */
export async function recordOwedManual(db: Kysely<any>, component: string, step: Pick<ManualStep, 'id' | 'version' | 'description' | 'estimate'>): Promise<void> {
  await db
    .insertInto('outageless_owed_manual')
    .values({ component, step_id: step.id, version: step.version, description: step.description, estimate: step.estimate })
    .onConflict((oc) => oc.columns(['component', 'step_id']).doNothing())
    .execute();
}

/**
 * Clears an owed manual action: run manually, or promoted (a later step of the same id ran).
 *
 * @example
 * ```ts
 * await clearOwedManual(trx, 'mod_quiz', 'quiz_regrade_all')
 * ```
 */
export async function clearOwedManual(db: Kysely<any>, component: string, id: string): Promise<void> {
  if (!(await tableExists(db, 'outageless_owed_manual'))) return;
  await db.deleteFrom('outageless_owed_manual').where('component', '=', component).where('step_id', '=', id).execute();
}

/**
 * Every owed manual action, oldest first.
 *
 * @example
 * ```ts
 * for (const action of await readOwedManual(db)) console.log(`${action.component}/${action.id}`)
 * ```
 */
export async function readOwedManual(db: Kysely<any>): Promise<OwedManualAction[]> {
  if (!(await tableExists(db, 'outageless_owed_manual'))) return [];
  const rows = await db.selectFrom('outageless_owed_manual').selectAll().orderBy('since').orderBy('component').orderBy('version').execute();
  return rows.map((row) => ({ component: row.component, id: row.step_id, version: Number(row.version), description: row.description, estimate: row.estimate, since: row.since }));
}

/** When `<component>/<id>` was logged as applied, if it was. */
async function appliedAt(db: Kysely<any>, component: string, id: string): Promise<Date | undefined> {
  if (!(await tableExists(db, 'outageless_upgrade_log'))) return undefined;
  const row = await db
    .selectFrom('outageless_upgrade_log')
    .select('started_at')
    .where('component', '=', component)
    .where('step_id', '=', id)
    .where('status', '=', 'applied')
    .orderBy('id', 'desc')
    .executeTakeFirst();
  return row?.started_at;
}

/** Throws the coded error for an action that is not owed; returns the owed row otherwise. */
async function owedOrThrow(db: Kysely<any>, component: string, id: string): Promise<OwedManualAction> {
  const owed = await readOwedManual(db);
  const action = owed.find((candidate) => candidate.component === component && candidate.id === id);
  if (action) return action;
  const at = await appliedAt(db, component, id);
  if (at) throw manualErrors.alreadyRun(component, id, at);
  throw manualErrors.unknownAction(component, id, owed.map((candidate) => `${candidate.component}/${candidate.id}`));
}

export interface RunManualOptions {
  readonly database: SiteDatabase;
  readonly code: SiteCode;
  readonly component: string;
  readonly id: string;
  /** Progress lines: the action's `ctx.log` and the runner's own. */
  readonly onLog?: (message: string) => void;
}

/**
 * Runs one owed manual action: under the upgrade lock (`online`: the site keeps serving), in
 * one transaction with its `applied` log row and the removal of its owed row. An action that
 * is not owed, or already run, is refused before anything is written; so is a run while
 * another upgrade (or another `manual run`) holds the lock.
 *
 * @example
 * ```ts
 * const { durationMs } = await runManualAction({ database, code, component: 'mod_quiz', id: 'quiz_regrade_all', onLog: console.log })
 * ```
 */
export async function runManualAction(options: RunManualOptions): Promise<{ readonly durationMs: number; readonly action: OwedManualAction }> {
  const { database, code, component, id } = options;
  const log = options.onLog ?? (() => {});
  await owedOrThrow(database.db, component, id);
  const held = await database.upgradeLock.tryAcquire('online');
  if (!held) throw errors.upgradeLocked(await database.upgradeLock.holder());
  try {
    // Another run may have finished it while we took the lock: the state under the lock is the truth.
    const action = await owedOrThrow(database.db, component, id);
    const onDisk = code.components.get(component);
    const file = onDisk ? join(onDisk.versionFile, '..', 'db', 'upgrade.ts') : `plugins/…/${component}/db/upgrade.ts`;
    const definition = onDisk ? (await loadUpgrade(code, onDisk)).steps.find((step) => step.id === id) : undefined;
    if (!definition || definition.phase !== 'manual') throw manualErrors.notOnDisk(component, id, file);
    await ensureStateTables(database.db);
    const startedAt = new Date();
    const started = performance.now();
    log(`running manual action ${component}/${id}: ${action.description} (estimate: ${action.estimate})`);
    try {
      await database.db.transaction().execute(async (trx) => {
        const unguard = await held.guard(trx);
        try {
          if (definition.run) await definition.run({ db: trx, component, schema: createSchemaHelpers(trx), log });
          else {
            // Long work: queued as a background migration in this same transaction, worked in
            // batches by the fronts and `outageless worker`; `status` tracks it.
            const step = await findBackgroundStep(code, component, id);
            const { migration } = await queueBackgroundMigration(trx, { component, step });
            log(`queued as background migration ${component}/${id} (${migration.state}); follow it with \`outageless background status\`, finish it now with \`outageless background finish ${component}/${id}\``);
          }
          await clearOwedManual(trx, component, id);
          await appendLog(trx, { runId: held.runId, component, stepId: id, version: definition.version, status: 'applied', outage: 'none', startedAt, durationMs: performance.now() - started });
          await held.verify(trx);
        } finally {
          unguard();
        }
      });
    } catch (error) {
      await appendLog(database.db, {
        runId: held.runId, component, stepId: id, version: definition.version, status: 'failed', outage: null, startedAt,
        durationMs: performance.now() - started, error: error instanceof Error ? error.message : String(error),
      }).catch(() => {});
      throw manualErrors.failed(component, id, file, error);
    }
    const durationMs = performance.now() - started;
    log(`manual action ${component}/${id} done in ${(durationMs / 1000).toFixed(2)} s`);
    return { durationMs, action };
  } finally {
    await held.release();
  }
}

/** One thing the site owes an operator, with the command that acts on it. */
export interface OwedCheck {
  readonly kind: 'manual' | 'post' | 'background';
  /** `<component>/<id>`. */
  readonly name: string;
  readonly component: string;
  readonly id: string;
  readonly since: Date;
  /** What it is and where it stands. */
  readonly detail: string;
  readonly command: string;
  /** Manual actions only. */
  readonly description?: string;
  readonly estimate?: string;
}

/**
 * The check API: everything owed (manual actions, post steps, background migrations not
 * finished or failed). Empty means nothing is owed (`outageless check` exits 0).
 *
 * @example
 * ```ts
 * const owed = await readChecks(db)
 * if (owed.length > 0) console.log(owed.map((check) => `${check.name}: ${check.command}`).join('\n'))
 * ```
 */
export async function readChecks(db: Kysely<any>): Promise<OwedCheck[]> {
  const [manual, post, background] = await Promise.all([readOwedManual(db), readOwedSteps(db), readBackgroundMigrations(db)]);
  const checks: OwedCheck[] = [];
  for (const action of manual) {
    const name = `${action.component}/${action.id}`;
    checks.push({
      kind: 'manual', name, component: action.component, id: action.id, since: action.since,
      detail: `manual action owed since version ${action.version}: ${action.description} (estimate: ${action.estimate})`,
      command: `outageless manual run ${name}`, description: action.description, estimate: action.estimate,
    });
  }
  for (const step of post) {
    checks.push({
      kind: 'post', name: `${step.component}/${step.step}`, component: step.component, id: step.step, since: step.since,
      detail: `post step owed since version ${step.version}: it runs once no live front runs ${step.component} below ${step.version}`,
      command: 'outageless upgrade --phase post',
    });
  }
  for (const migration of background) {
    if (migration.state === 'finished' || migration.state === 'cancelled') continue;
    const name = `${migration.component}/${migration.id}`;
    const command = migration.state === 'failed' ? `outageless background retry ${name}` : migration.state === 'paused' ? `outageless background resume ${name}` : `outageless background finish ${name}`;
    checks.push({
      kind: 'background', name, component: migration.component, id: migration.id, since: migration.queuedAt,
      detail: `background migration ${migration.state}${migration.error ? `: ${migration.error}` : ''}`,
      command,
    });
  }
  return checks;
}

/** A check as JSON (`check --json`, `GET /admin/checks`). */
export function checkToJson(check: OwedCheck): Record<string, unknown> {
  return { ...check, since: check.since.toISOString() };
}
