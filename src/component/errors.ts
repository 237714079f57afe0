import { errorFactory, ExitCode } from '../errors.ts';

/**
 * Typed errors of the step-import lint (the Totara rule: no plugin code in upgrade steps).
 * Codes are part of the public contract (runbooks grep for them): never rename one.
 *
 * @example
 * ```ts
 * try {
 *   await assertStepImports(code, component, 'upgrade.ts')
 * } catch (error) {
 *   if (isOutagelessError(error, componentErrors.stepImport.code)) console.error(error.describe())
 * }
 * ```
 */
export const componentErrors = {
  /**
   * A step file (or a file it imports) imports something other than `outageless`, `kysely`,
   * Node built-ins and files under the component's own `db/`.
   */
  stepImport: errorFactory(
    'OUTAGELESS_ERR_STEP_IMPORT',
    (problem: {
      /** Relative to the site root: the file holding the import. */
      readonly file: string;
      readonly line: number;
      readonly component: string;
      /** The import as written, or the expression of a computed one. */
      readonly specifier: string;
      readonly computed: boolean;
      /** The step file (db/upgrade.ts or db/install.ts) the import was reached from. */
      readonly entry: string;
      /** Where a relative specifier points, relative to the site root. */
      readonly resolved: string | undefined;
      /** The component's db/ directory, relative to the site root. */
      readonly dbDir: string;
      /** Further findings in the same component, listed by `outageless lint`. */
      readonly more: number;
    }) => ({
      message:
        (problem.computed
          ? `${problem.file}:${problem.line} imports a module named at run time (${problem.specifier}), which the lint cannot check`
          : `${problem.file}:${problem.line} imports "${problem.specifier}"${problem.resolved ? ` (${problem.resolved})` : ''}, which is not allowed in upgrade code`) +
        (problem.entry === problem.file ? '' : `; it is reached from ${problem.entry}`) +
        '. Steps may import only outageless, kysely, Node built-ins and files under the component\'s db/' +
        (problem.more > 0 ? ` (${problem.more} more finding${problem.more === 1 ? '' : 's'}: run \`outageless lint\`)` : ''),
      location: { file: problem.file, component: problem.component },
      exitCode: ExitCode.lintFailed,
      hint: problem.computed
        ? `Import with a string literal naming outageless, kysely, a Node built-in or a file under ${problem.dbDir}/.`
        : `Steps run against the schema of their own version, long after the component's runtime code has moved on: move the logic into the step using ctx.db's query builder, or into a file under ${problem.dbDir}/.`,
    }),
  ),
  /** The imports of a step file could not be listed, so the rule cannot be checked. */
  stepImportUnchecked: errorFactory('OUTAGELESS_ERR_STEP_IMPORT_UNCHECKED', (file: string, component: string, problem: string, hint: string) => ({
    message: `cannot check the imports of ${file}: ${problem}`,
    location: { file, component },
    exitCode: ExitCode.lintFailed,
    hint,
  })),
} as const;
