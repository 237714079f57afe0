import { errorFactory } from '../errors.ts';

/**
 * Typed errors of `outageless rehearse`. Codes are part of the public contract (runbooks grep
 * for them): never rename one.
 *
 * @example
 * ```ts
 * try {
 *   await rehearse({ database, url, code })
 * } catch (error) {
 *   if (isOutagelessError(error, rehearseErrors.needsPostgres.code)) console.error('rehearse needs PostgreSQL')
 * }
 * ```
 */
export const rehearseErrors = {
  /** The site runs on the embedded PGlite database: one connection, so no lock monitor. */
  needsPostgres: errorFactory('OUTAGELESS_ERR_REHEARSE_NEEDS_POSTGRES', (database: string) => ({
    message: `rehearse needs PostgreSQL, but the site database is ${database}: the embedded database has a single connection, so the locks a step takes cannot be watched from a second one`,
    hint: 'Rehearse against a PostgreSQL copy of the site (--database postgres://…), or test the steps with outageless/testing.',
  })),
  /** A step of the rehearsal reached (or tried to reach) past the scratch schema. */
  liveTouched: errorFactory(
    'OUTAGELESS_ERR_REHEARSE_LIVE_TOUCHED',
    (component: string, step: string, file: string, relations: readonly string[], how: 'refused' | 'rolled-back' | 'ran') => ({
      message:
        how === 'refused'
          ? `step ${step} sent a statement that names ${relations.join(', ')} outside the scratch copy; it was refused before it reached the database, nothing live was changed`
          : how === 'rolled-back'
            ? `step ${step} took write locks on ${relations.join(', ')} outside the scratch copy; its transaction was rolled back, nothing live was changed`
            : `step ${step} took write locks on ${relations.join(', ')} outside the scratch copy (from a function or DO block the rehearsal cannot read); it ran outside a transaction, so check those relations`,
      location: { component, step, file },
      hint: "Write unqualified table names in steps (assign, not public.assign) and leave the search path alone: steps run in the site's schema, and a rehearsal runs them in a scratch copy of it.",
    }),
  ),
  /** A pending step failed on the scratch copy; it would fail on the live database as well. */
  stepFailed: errorFactory('OUTAGELESS_ERR_REHEARSE_STEP_FAILED', (component: string, step: string, version: number, file: string, cause: unknown) => ({
    message: `step ${step} (${version}) failed on the scratch copy: ${cause instanceof Error ? cause.message : String(cause)}. Nothing live was changed`,
    location: { component, step, file },
    hint: `Fix the step in ${file} and rehearse again; the live upgrade would stop at the same step.`,
    cause,
  })),
  /** The step connection stayed busy: a step (or helper) waited for a second connection. */
  connectionTimeout: errorFactory('OUTAGELESS_ERR_REHEARSE_CONNECTION', (component: string, step: string, file: string, cause: unknown) => ({
    message: `step ${step} waited for a second database connection during the rehearsal, which runs every step on one connection so that its locks can be watched: ${cause instanceof Error ? cause.message : String(cause)}`,
    location: { component, step, file },
    hint: 'Inside a helper or a transaction, use the connection you were given (ctx.db, or the trx of db.transaction()) rather than opening another.',
    cause,
  })),
};
