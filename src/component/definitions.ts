import type { Kysely } from 'kysely';
import type { SchemaHelpers } from '../schema/helpers.ts';

/**
 * The contract plugin authors write to: `version.ts`, `db/upgrade.ts` and `db/install.ts`.
 * The `define*` functions only tag and freeze what they are given. They carry no state, so
 * a plugin that imports `outageless` from another copy of the package still works.
 */

export type Maturity = 'alpha' | 'beta' | 'rc' | 'stable';

/** `none` is safe while old and new code serve; `component` pauses it; `site` is a full outage. */
export type OutageClass = 'none' | 'component' | 'site';

/** Which caches an upgrade asks to purge once new code takes traffic. */
export type CachePurge = 'none' | 'own' | 'all';

export interface VersionDefinition {
  readonly kind: 'version';
  /** `core`, or `<type>_<name>` matching the directory `plugins/<type>/<name>/`. */
  readonly component: string;
  /** `YYYYMMDDXX`; only ever moves forward. */
  readonly version: number;
  /** Minimum core version this component needs. */
  readonly requires?: number;
  /** Human label, e.g. `"2.1"`. */
  readonly release?: string;
  /** Marks a code-only change; recorded, never triggers an upgrade. */
  readonly codeIncrement?: string;
  readonly maturity?: Maturity;
  /** Other components this one needs, with their minimum versions. */
  readonly dependencies?: Readonly<Record<string, number>>;
  readonly maintenance?: { readonly disableable: boolean };
  /** Subplugin types this component declares, each with its directory relative to the component. */
  readonly subplugins?: Readonly<Record<string, string>>;
  /** Core only: the plugin type directories a site may have under `plugins/`. */
  readonly pluginTypes?: readonly string[];
  /** Core only: plugin type upgrade order; types not listed follow, `local` last. */
  readonly upgradeOrder?: readonly string[];
}

/**
 * Declares a component's identity and version in `version.ts`.
 *
 * @example
 * ```ts
 * import { defineVersion } from 'outageless'
 *
 * export default defineVersion({
 *   component: 'mod_assign',
 *   version: 2024050100,
 *   release: '2.0',
 *   requires: 2024010100,
 *   dependencies: { mod_quiz: 2024010100 },
 *   subplugins: { assignsubmission: 'submission' },
 * })
 * ```
 */
export function defineVersion(definition: Omit<VersionDefinition, 'kind'>): VersionDefinition {
  return Object.freeze({ ...definition, kind: 'version' });
}

/** Where a step runs. The upgrade runs `pre`, `main` and `post` steps in version order. */
export type StepPhase = 'pre' | 'main' | 'post';

export interface StepContext {
  /** The site database. Use the query builder, never plugin code or models (the Totara rule). */
  readonly db: Kysely<any>;
  /** Idempotent DDL with lock timeouts and retries. */
  readonly schema: SchemaHelpers;
  readonly component: string;
  /** Writes a line to the upgrade output. */
  readonly log: (message: string) => void;
}

export interface UpgradeStep {
  /** The component's version once this step is done (its savepoint). */
  readonly version: number;
  /** Stable id: a step already applied under another version is skipped. */
  readonly id: string;
  readonly description?: string;
  /** Undeclared means `site`: an undeclared step is assumed unsafe. */
  readonly outage?: OutageClass;
  readonly phase?: StepPhase;
  /** `false` for steps that cannot run inside a transaction (e.g. CREATE INDEX CONCURRENTLY). */
  readonly transaction?: boolean;
  run(context: StepContext): Promise<void> | void;
}

export interface UpgradeMetadata {
  readonly maintenance?: OutageClass;
  readonly purgeCaches?: CachePurge;
}

export interface UpgradeDefinition {
  readonly kind: 'upgrade';
  readonly steps: readonly UpgradeStep[];
  /** Called with the installed version; speaks for the whole pending change of the component. */
  readonly metadata?: (oldVersion: number) => UpgradeMetadata | Promise<UpgradeMetadata>;
}

/**
 * Declares a component's upgrade steps in `db/upgrade.ts`.
 *
 * @example
 * ```ts
 * import { defineUpgrade } from 'outageless'
 *
 * export default defineUpgrade({
 *   steps: [{
 *     version: 2024050100,
 *     id: 'assign-add-duedate',
 *     description: 'Add a due date to assignments',
 *     outage: 'none',
 *     async run({ schema }) {
 *       await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true })
 *     },
 *   }],
 *   metadata: () => ({ maintenance: 'none', purgeCaches: 'own' }),
 * })
 * ```
 */
export function defineUpgrade(definition: Omit<UpgradeDefinition, 'kind'>): UpgradeDefinition {
  return Object.freeze({ ...definition, kind: 'upgrade' });
}

export interface InstallDefinition {
  readonly kind: 'install';
  run(context: StepContext): Promise<void> | void;
}

/**
 * Declares the initial data a fresh install writes, in `db/install.ts`. It runs after the
 * component's tables exist, inside the install transaction.
 *
 * @example
 * ```ts
 * import { defineInstall } from 'outageless'
 *
 * export default defineInstall(async ({ db }) => {
 *   await db.insertInto('news_settings').values({ name: 'perpage', value: '10' }).execute()
 * })
 * ```
 */
export function defineInstall(run: InstallDefinition['run']): InstallDefinition {
  return Object.freeze({ kind: 'install', run });
}
