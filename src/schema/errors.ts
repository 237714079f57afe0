import { OutagelessError } from '../errors.ts';

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
  lockTimeout: Object.assign(
    (what: string, attempts: number, lockTimeoutMs: number, cause: unknown): OutagelessError =>
      new OutagelessError(
        'OUTAGELESS_ERR_LOCK_TIMEOUT',
        `${what}: could not get its lock within ${lockTimeoutMs}ms, ${attempts} attempts; nothing was changed by it`,
        {
          cause,
          hint:
            'A long-running transaction holds a lock on the table. Find it with ' +
            "`select pid, state, xact_start, query from pg_stat_activity where state <> 'idle'`, " +
            'let it finish (or end it), then rerun `outageless upgrade`: the step resumes.',
        },
      ),
    { code: 'OUTAGELESS_ERR_LOCK_TIMEOUT' },
  ),
  objectMissing: Object.assign(
    (what: string, problem: string): OutagelessError =>
      new OutagelessError('OUTAGELESS_ERR_SCHEMA_OBJECT_MISSING', `${what}: ${problem}`, {
        hint: 'Check the table and column names in the step; an earlier step may have renamed or dropped it.',
      }),
    { code: 'OUTAGELESS_ERR_SCHEMA_OBJECT_MISSING' },
  ),
} as const;
