/**
 * `outageless/testing`: a harness for plugin authors' upgrade-step tests. It installs
 * release N-1 into a scratch database (PGlite in memory, or a schema of its own on
 * PostgreSQL), runs the pending steps of release N twice each, and asserts on rows and on
 * `db/schema.ts`. It throws typed errors and needs no particular test runner.
 *
 * @example
 * ```ts
 * import { createStepHarness } from 'outageless/testing'
 *
 * const harness = await createStepHarness({ from: 'releases/1', to: 'releases/2' })
 * await harness.runPending('mod_assign')
 * await harness.assertSchemaMatches('mod_assign')
 * await harness.close()
 * ```
 */
export {
  createStepHarness,
  type StepHarness, type StepHarnessOptions, type StepLog, type HarnessStep, type HarnessRun, type RunOptions,
} from './harness.ts';
export { testingErrors } from './errors.ts';
export { OutagelessError, isOutagelessError } from '../errors.ts';
