import type { Kysely } from 'kysely';
import { ensureStateTables, tableExists } from './tables.ts';

/**
 * The operator log, `outageless_admin_action`: one row per operator action (site maintenance,
 * a component's pause or resume, a cache purge, the UI upgrade lock), from the admin console
 * or the CLI, done or refused. The admin dashboard shows the latest as "Recent actions".
 */

/** Who acted: the admin console (with its session) or the command line. */
export type OperatorActor =
  | { readonly kind: 'web'; readonly sessionHash: string | null; readonly client: string }
  | { readonly kind: 'cli'; readonly client: string };

export type OperatorActionName = 'maintenance-on' | 'maintenance-off' | 'pause' | 'resume' | 'purge-caches' | 'ui-lock-set' | 'ui-lock-clear';

/** done: it happened; refused: a rule said no and nothing changed; failed: it broke (see the error code). */
export type OperatorOutcome = 'done' | 'refused' | 'failed';

export interface OperatorLogEntry {
  readonly actor: OperatorActor;
  readonly action: OperatorActionName;
  /** The component, `all` for a full purge, or null. */
  readonly target: string | null;
  readonly outcome: OperatorOutcome;
  readonly errorCode: string | null;
  /** The maintenance message, or the refusal's message. */
  readonly detail: string | null;
}

export interface OperatorLogRow extends OperatorLogEntry {
  readonly id: number;
  readonly at: Date;
}

/**
 * Appends one row (creating the state tables on a site that has none yet).
 *
 * @example
 * ```ts
 * await recordOperatorAction(db, { actor: { kind: 'cli', client: 'ops@web1 pid 42' }, action: 'pause', target: 'mod_assign', outcome: 'done', errorCode: null, detail: null })
 * ```
 */
export async function recordOperatorAction(db: Kysely<any>, entry: OperatorLogEntry): Promise<void> {
  await ensureStateTables(db);
  await db
    .insertInto('outageless_admin_action')
    .values({
      at: new Date(),
      actor: entry.actor.kind,
      session_id: entry.actor.kind === 'web' ? entry.actor.sessionHash : null,
      client: entry.actor.client.slice(0, 255),
      action: entry.action,
      target: entry.target?.slice(0, 200) ?? null,
      outcome: entry.outcome,
      error_code: entry.errorCode,
      detail: entry.detail,
    })
    .execute();
}

/**
 * The latest `limit` rows, newest first (empty on a site without the table).
 *
 * @example
 * ```ts
 * for (const row of await readOperatorLog(db, 20)) console.log(row.at, row.action, row.target, row.outcome)
 * ```
 */
export async function readOperatorLog(db: Kysely<any>, limit = 20): Promise<OperatorLogRow[]> {
  if (!(await tableExists(db, 'outageless_admin_action'))) return [];
  const rows = await db.selectFrom('outageless_admin_action').selectAll().orderBy('id', 'desc').limit(limit).execute();
  return rows.map((row) => ({
    id: Number(row.id),
    at: new Date(row.at),
    actor: row.actor === 'web' ? { kind: 'web', sessionHash: row.session_id, client: row.client ?? '' } : { kind: 'cli', client: row.client ?? '' },
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    errorCode: row.error_code,
    detail: row.detail,
  }));
}
