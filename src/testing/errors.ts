import { errorFactory } from '../errors.ts';

/**
 * Typed errors of the step test harness (`outageless/testing`). Each one is a failed
 * assertion or a misuse an author can fix; the message names the component, the step, the
 * file and what differed, so a test runner's one-line report is enough to act on. Codes are
 * part of the public contract: never rename one.
 *
 * @example
 * ```ts
 * try {
 *   await harness.runPending('mod_assign')
 * } catch (error) {
 *   if (isOutagelessError(error, testingErrors.notIdempotent.code)) console.error(error.describe())
 *   throw error
 * }
 * ```
 */

const list = (lines: readonly string[]) => lines.map((line) => `\n  - ${line}`).join('');

export const testingErrors = {
  /** The harness was given a database it would not be safe to install into. */
  databaseNotScratch: errorFactory('OUTAGELESS_ERR_TEST_DATABASE', (url: string) => ({
    message: `the step harness installs into a scratch database, and ${url} is not one`,
    hint: 'Use pglite://memory (the default), or a postgres:// URL: each harness gets a schema of its own there and drops it on close().',
  })),
  /** `runStep` or `runPending` named something the plan of release N does not run. */
  notPending: errorFactory('OUTAGELESS_ERR_TEST_NOT_PENDING', (component: string, step: string | undefined, file: string, reason: string) => ({
    message: `${component}${step ? ` step ${step}` : ''}: ${reason}`,
    location: { component, file, ...(step ? { step } : {}) },
    hint: 'Check the component name and step id against db/upgrade.ts of release N and the version installed from release N-1; harness.pending() lists what the runner would run.',
  })),
  /** A step threw on its first run. */
  stepFailed: errorFactory('OUTAGELESS_ERR_TEST_STEP_FAILED', (component: string, step: string, file: string, cause: unknown) => ({
    message: `${component} step ${step} (${file}) failed: ${cause instanceof Error ? cause.message : String(cause)}`,
    location: { component, step, file },
    hint: 'Fix the step or the seeded rows it trips on. The cause holds the database error.',
    cause,
  })),
  /** A step's second run threw, or changed the schema or the rows. */
  notIdempotent: errorFactory('OUTAGELESS_ERR_TEST_NOT_IDEMPOTENT', (component: string, step: string, file: string, problems: readonly string[], cause?: unknown) => ({
    message: `${component} step ${step} (${file}) is not idempotent: its second run${list(problems)}`,
    location: { component, step, file },
    hint: 'A step reruns after a crash. Use the ctx.schema helpers (they check the catalog first), and guard data changes with a WHERE that the first run makes false.',
    ...(cause === undefined ? {} : { cause }),
  })),
  /** The live schema after the steps differs from the component's `db/schema.ts`. */
  schemaMismatch: errorFactory('OUTAGELESS_ERR_TEST_SCHEMA_MISMATCH', (scope: string, file: string, differences: readonly string[], notRun: readonly string[]) => ({
    message:
      `${scope}: the schema after the steps differs from ${file} in ${differences.length} place(s):${list(differences)}` +
      (notRun.length > 0 ? `\n  (pending steps not run yet: ${notRun.join(', ')})` : ''),
    location: { component: scope, file },
    hint: `Make the steps and ${file} agree: a fresh install of release N uses db/schema.ts, an upgrade uses the steps, and both must end in the same schema.`,
  })),
  /** `assertRows` found other rows than expected. */
  rowsMismatch: errorFactory('OUTAGELESS_ERR_TEST_ROWS_MISMATCH', (table: string, problems: readonly string[]) => ({
    message: `table ${table} does not hold the expected rows:${list(problems)}`,
    hint: 'Rows are compared in primary-key order, on the columns the expected rows name.',
  })),
} as const;
