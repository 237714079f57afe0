import { errorFactory, ExitCode, OutagelessError } from '../errors.ts';
import { describeBlockers, type BlockingSession } from './lock-safety.ts';

/**
 * Typed errors of the schema layer. They live here rather than in `src/errors.ts` so the
 * schema folder owns its codes; the codes are public contract all the same.
 *
 * @example
 * ```ts
 * try {
 *   validateSchema(file, 'mod_assign', loaded)
 * } catch (error) {
 *   if (isOutagelessError(error, schemaErrors.schemaInvalid.code)) console.error(error.describe())
 * }
 * ```
 */
export const schemaErrors = {
  schemaInvalid: Object.assign(
    (file: string, component: string, field: string, problem: string, hint?: string): OutagelessError =>
      new OutagelessError('OUTAGELESS_ERR_SCHEMA_INVALID', `${component}: ${problem}`, {
        location: { file, component, field },
        hint: hint ?? `Correct ${field} in ${file}.`,
      }),
    { code: 'OUTAGELESS_ERR_SCHEMA_INVALID' },
  ),
  /**
   * A helper inside the caller's transaction hit its lock timeout. It is not retried there:
   * a savepoint would keep every lock the transaction already took, so the whole
   * transaction is rolled back and retried (the runner does that for steps).
   */
  lockTimeout: errorFactory('OUTAGELESS_ERR_LOCK_TIMEOUT', (what: string, lockTimeoutMs: number, cause: unknown) => ({
    message: `${what}: could not get its lock within ${lockTimeoutMs}ms; the transaction must be rolled back and retried as a whole`,
    cause,
    hint: 'Let a long-running transaction on the table finish, then retry. `outageless upgrade` retries a step\'s whole transaction with backoff on its own.',
  })),
  /** The lock-wait budget of a step is spent. Nothing of the attempt is left: each one rolled back. */
  lockWaitExceeded: errorFactory(
    'OUTAGELESS_ERR_LOCK_WAIT_EXCEEDED',
    (what: string, table: string | undefined, attempts: number, lockTimeoutMs: number, budgetMs: number, blockers: readonly BlockingSession[]) => ({
      message:
        `${what}: gave up after ${attempts} attempts of ${lockTimeoutMs}ms over a ${Math.round(budgetMs / 100) / 10}s lock-wait budget; ` +
        `every attempt was rolled back, so nothing is half-done. ` +
        `${table ? `Blocking the lock on ${table}` : 'Oldest open transactions'}: ${describeBlockers(blockers)}`,
      exitCode: ExitCode.lockWaitExceeded,
      hint:
        `Let the blocking session finish or end it (select pg_terminate_backend(${blockers[0]?.pid ?? '<pid>'})), ` +
        'or give the step a longer budget with --lock-wait <seconds>; then rerun `outageless upgrade`: it resumes at this step.',
    }),
  ),
  /** A helper that breaks the installed release's code was called from a step that runs online. */
  unsafeOnline: errorFactory('OUTAGELESS_ERR_UNSAFE_ONLINE', (component: string, step: string, reason: string) => ({
    message: `step "${step}" runs while the site serves (outage 'none'), but ${reason}; nothing of this helper was done`,
    location: { component, step },
    hint: 'Use the safe alternative above, or declare the step\'s real outage class (outage: \'component\' or \'site\').',
  })),
  objectMissing: Object.assign(
    (what: string, problem: string): OutagelessError =>
      new OutagelessError('OUTAGELESS_ERR_SCHEMA_OBJECT_MISSING', `${what}: ${problem}`, {
        hint: 'Check the table and column names in the step; an earlier step may have renamed or dropped it.',
      }),
    { code: 'OUTAGELESS_ERR_SCHEMA_OBJECT_MISSING' },
  ),
} as const;
