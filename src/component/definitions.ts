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

/**
 * Where a step runs in a rolling deploy (DESIGN §4.5):
 * - `pre` (expand): before any new code takes traffic, while old fronts serve; class `none` only;
 * - `main` (the default): the upgrade proper;
 * - `post` (contract): once no live front runs the component below the step's version; the
 *   place for breaking changes such as dropping an old column.
 * Background migrations are steps of their own shape ({@link BackgroundStep}).
 */
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
  /**
   * Finalization gate: `<component>/<id>` of background migrations or steps that must be
   * finished before this step may run. A plan with an unfinished one is refused.
   */
  readonly after?: readonly string[];
  run(context: StepContext): Promise<void> | void;
}

/** What a batch of a background migration gets: the keys `from..to`, inclusive. */
export interface BatchContext {
  /** The site database, inside the batch's own short transaction. */
  readonly db: Kysely<any>;
  readonly from: number;
  readonly to: number;
}

/**
 * A batched background migration in `db/upgrade.ts`: queued when its version is reached and
 * worked after the upgrade, batch by batch, each in its own short transaction, by any front
 * or by `outageless worker`.
 *
 * @example
 * ```ts
 * {
 *   phase: 'background', version: 2026050100, id: 'attempts_v2',
 *   description: 'Copy quiz attempt answers into the new layout',
 *   table: 'quiz_attempts', key: 'id',
 *   async batch({ db, from, to }) {
 *     const result = await db.updateTable('quiz_attempts').set((eb) => ({ answers_v2: eb.ref('answers') }))
 *       .where('id', '>=', from).where('id', '<=', to).where('answers_v2', 'is', null).executeTakeFirst()
 *     return Number(result.numUpdatedRows)
 *   },
 * }
 * ```
 */
export interface BackgroundStep {
  readonly phase: 'background';
  readonly version: number;
  readonly id: string;
  readonly description?: string;
  /** The table whose key range is split into batches. */
  readonly table: string;
  /** An integer key column of `table` (usually its primary key). */
  readonly key: string;
  /** Processes keys `from..to` inclusive; returns the number of rows it changed. */
  batch(context: BatchContext): Promise<number> | number;
  /** Target duration of one batch in ms (default 100); the batch size adapts toward it. */
  readonly targetBatchMs?: number;
  /** Bounds of the adaptive batch size, in keys (defaults 100 / 1000 / 50000). */
  readonly batchSize?: { readonly min?: number; readonly initial?: number; readonly max?: number };
  readonly after?: readonly string[];
}

/**
 * A manual action in `db/upgrade.ts` (Totara's "temporary manual upgrade step"): `upgrade`
 * never runs it. It becomes *owed* when the runner reaches its version, and an informed
 * administrator runs it later with `outageless manual run <component>/<id>` (or "Run now" on
 * `/admin`), under the upgrade lock, in one transaction, logged like a step. The next release
 * may carry the same id as a `main` or `background` step: skipped if it was run, run if not.
 *
 * @example
 * ```ts
 * {
 *   phase: 'manual', version: 2026070100, id: 'quiz_regrade_all',
 *   description: 'Regrade every quiz attempt with the new rounding',
 *   estimate: 'about 1 minute per 100,000 attempts',
 *   async run({ db, log }) {
 *     const result = await db.updateTable('quiz_attempts').set({ regraded: true }).executeTakeFirst()
 *     log(`regraded ${result.numUpdatedRows} attempts`)
 *   },
 * }
 * ```
 */
export interface ManualStep {
  readonly phase: 'manual';
  readonly version: number;
  readonly id: string;
  readonly description: string;
  /** How long it takes, for the operator deciding when to run it (`"about 5 minutes"`). */
  readonly estimate: string;
  /**
   * Either `run` (one transaction, returns when done) or, for long work, the shape of a
   * background migration (`table`, `key`, `batch`): `manual run` then queues it in batches
   * and `status` / `background status` track it.
   */
  readonly run?: (context: StepContext) => Promise<void> | void;
  readonly table?: string;
  readonly key?: string;
  readonly batch?: BackgroundStep['batch'];
  readonly targetBatchMs?: number;
  readonly batchSize?: BackgroundStep['batchSize'];
  // Not options of a manual action (the manifest refuses them): it runs online, in one
  // transaction, when an operator chooses. Declared so code reading any step can ask.
  readonly after?: undefined;
  readonly outage?: undefined;
  readonly transaction?: undefined;
}

/** Any entry of `defineUpgrade({ steps })`. */
export type AnyUpgradeStep = UpgradeStep | BackgroundStep | ManualStep;

/** True for a `phase: 'manual'` step. */
export function isManualStep(step: AnyUpgradeStep): step is ManualStep {
  return step.phase === 'manual';
}

/** True for a `phase: 'background'` step. */
export function isBackgroundStep(step: AnyUpgradeStep): step is BackgroundStep {
  return step.phase === 'background';
}

export interface UpgradeMetadata {
  readonly maintenance?: OutageClass;
  readonly purgeCaches?: CachePurge;
}

export interface UpgradeDefinition {
  readonly kind: 'upgrade';
  readonly steps: readonly AnyUpgradeStep[];
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
