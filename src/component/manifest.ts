import { z } from 'zod';
import { errors } from '../errors.ts';
import { nearestKey } from '../did-you-mean.ts';
import type { UpgradeDefinition, UpgradeMetadata, VersionDefinition } from './definitions.ts';

/**
 * Validation of what plugin authors write. Each problem becomes a typed error naming the
 * file and the field, because "invalid manifest" alone sends an author hunting.
 */

/**
 * Why `value` is not a `YYYYMMDDXX` version (the date of the change and a two-digit counter
 * within that day), or undefined when it is one. A typo here would sort the component's
 * upgrades wrongly forever, since versions only move forward.
 *
 * @example
 * ```ts
 * versionProblem(2026020100) // undefined
 * versionProblem(20260201)   // '20260201 has 8 digits, not the 10 of YYYYMMDDXX (the date and a two-digit counter): 2026020100, say'
 * versionProblem(2026131500) // '2026131500 is not YYYYMMDDXX: month 13 is not 01-12'
 * ```
 */
export function versionProblem(value: number): string | undefined {
  const text = String(value);
  if (!/^[1-9]\d{9}$/.test(text)) {
    const example = /^[1-9]\d{7}$/.test(text) && dateProblem(text) === undefined ? `${text}00` : '2026020100';
    return `${text} has ${text.length} digits, not the 10 of YYYYMMDDXX (the date and a two-digit counter): ${example}, say`;
  }
  const problem = dateProblem(text);
  return problem === undefined ? undefined : `${text} is not YYYYMMDDXX: ${problem}`;
}

/** Why the first 8 digits of `text` are not a calendar date YYYYMMDD. */
function dateProblem(text: string): string | undefined {
  const year = Number(text.slice(0, 4));
  const month = Number(text.slice(4, 6));
  const day = Number(text.slice(6, 8));
  if (month < 1 || month > 12) return `month ${text.slice(4, 6)} is not 01-12`;
  // Day 0 of the next month is the last day of this one (leap years included).
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > days) return `${text.slice(0, 4)}-${text.slice(4, 6)} has no day ${text.slice(6, 8)}`;
  return undefined;
}

const version = z
  .number({ error: 'must be an integer version (YYYYMMDDXX)' })
  .int('must be an integer version (YYYYMMDDXX)')
  .positive('must be positive')
  .superRefine((value, context) => {
    const problem = versionProblem(value);
    if (problem) context.addIssue({ code: 'custom', message: problem });
  });
const componentName = z.string().regex(/^(core|[a-z][a-z0-9]*_[a-z][a-z0-9_]*)$/, 'must be "core" or "<type>_<name>" in lower case');

const versionSchema = z.strictObject({
  kind: z.literal('version', { error: 'default export must come from defineVersion({...})' }),
  component: componentName,
  version,
  requires: version.optional(),
  release: z.string().optional(),
  codeIncrement: z.string().optional(),
  maturity: z.enum(['alpha', 'beta', 'rc', 'stable']).optional(),
  dependencies: z.record(componentName, version).optional(),
  maintenance: z.strictObject({ disableable: z.boolean() }).optional(),
  subplugins: z.record(z.string().regex(/^[a-z][a-z0-9]*$/), z.string().min(1)).optional(),
  pluginTypes: z.array(z.string().regex(/^[a-z][a-z0-9]*$/)).optional(),
  upgradeOrder: z.array(z.string()).optional(),
});

const fn = z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function');
const identifier = z.string({ error: 'must be a table or column name' }).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a table or column name');
/** `<component>/<id>` of a prerequisite: a background migration or a step. */
const after = z.array(z.string().regex(/^(core|[a-z][a-z0-9]*_[a-z][a-z0-9_]*)\/[^\s/]+$/, 'must be "<component>/<id>"')).optional();

const runStepSchema = z.strictObject({
  version,
  id: z.string().min(1, 'must be a non-empty, stable string'),
  description: z.string().optional(),
  outage: z.enum(['none', 'component', 'site']).optional(),
  phase: z.enum(['pre', 'main', 'post'], { error: 'must be "pre", "main", "post", "background" or "manual"' }).optional(),
  transaction: z.boolean().optional(),
  after,
  run: fn,
});

/** A batched background migration: its own shape, told apart by its phase. */
const backgroundStepSchema = z.strictObject({
  phase: z.literal('background'),
  version,
  id: z.string().min(1, 'must be a non-empty, stable string'),
  description: z.string().optional(),
  table: identifier,
  key: identifier,
  batch: fn,
  targetBatchMs: z.number().int().positive().optional(),
  batchSize: z.strictObject({ min: z.number().int().positive().optional(), initial: z.number().int().positive().optional(), max: z.number().int().positive().optional() }).optional(),
  after,
});

/** A manual action: owed when its version is reached, run by an operator (`outageless manual run`). */
const manualStepSchema = z.strictObject({
  phase: z.literal('manual'),
  version,
  id: z.string().min(1, 'must be a non-empty, stable string'),
  description: z.string({ error: 'must say what the action does, for `outageless manual list`' }).min(1, 'must say what the action does'),
  estimate: z.string({ error: 'must be a text such as "about 5 minutes"' }).min(1, 'must be a text such as "about 5 minutes"'),
  run: fn.optional(),
  // Long work: the shape of a background migration, queued by `manual run`.
  table: identifier.optional(),
  key: identifier.optional(),
  batch: fn.optional(),
  targetBatchMs: z.number().int().positive().optional(),
  batchSize: z.strictObject({ min: z.number().int().positive().optional(), initial: z.number().int().positive().optional(), max: z.number().int().positive().optional() }).optional(),
}).superRefine((step, context) => {
  const batched = step.table !== undefined || step.key !== undefined || step.batch !== undefined;
  if (step.run && batched) context.addIssue({ code: 'custom', path: ['run'], message: 'is either run, or table, key and batch (a batched action), not both' });
  else if (!step.run && !batched) context.addIssue({ code: 'custom', path: ['run'], message: 'must be a function (or give table, key and batch for a batched action)' });
  else if (batched) {
    for (const field of ['table', 'key', 'batch'] as const) {
      if (step[field] === undefined) context.addIssue({ code: 'custom', path: [field], message: 'is required for a batched manual action (table, key and batch)' });
    }
  }
});

const upgradeSchema = z.strictObject({
  kind: z.literal('upgrade', { error: 'default export must come from defineUpgrade({...})' }),
  // Each step is checked against its own shape in validateUpgrade, so an error names the
  // field its own shape misses (a background step's `key`, not `run`).
  steps: z.array(z.object({}).passthrough(), { error: 'must be an array of steps' }),
  metadata: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function').optional(),
});

/** What `metadata()` may return; checked like every other definition. */
const metadataSchema = z.strictObject(
  {
    maintenance: z.enum(['none', 'component', 'site'], { error: 'must be "none", "component" or "site"' }).optional(),
    purgeCaches: z.enum(['none', 'own', 'all'], { error: 'must be "none", "own" or "all"' }).optional(),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? `must be an object such as { maintenance: 'none' }, not ${describeValue(issue.input)}` : undefined) },
);

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return Array.isArray(value) ? 'an array' : typeof value;
}

// Kept importable from here: definition checks and their tests have always found it here.
export { nearestKey };

/** The keys the object schema at `path` knows, walking through arrays, records and optionals. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: z.ZodType | undefined = schema;
  const unwrap = (node: z.ZodType | undefined): z.ZodType | undefined => {
    while (node instanceof z.ZodOptional || node instanceof z.ZodNullable) node = node.unwrap() as z.ZodType;
    return node;
  };
  for (const part of path) {
    current = unwrap(current);
    if (current instanceof z.ZodObject) current = (current.shape as Record<string, z.ZodType>)[String(part)];
    else if (current instanceof z.ZodArray) current = current.element as z.ZodType;
    else if (current instanceof z.ZodRecord) current = current.valueType as z.ZodType;
    else return [];
  }
  current = unwrap(current);
  return current instanceof z.ZodObject ? Object.keys(current.shape as object).filter((key) => key !== 'kind') : [];
}

/** The field, problem and fix of the first issue; an unknown key gets the nearest known one. */
function describeIssue(schema: z.ZodType, error: z.ZodError, file: string): { field: string; problem: string; hint: string | undefined } {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeys(schema, issue.path);
    const nearest = nearestKey(key, known);
    return {
      field: fieldPath([...issue.path, key]),
      problem: `unknown key "${key}"${issue.keys.length > 1 ? ` (and ${issue.keys.slice(1).map((other) => `"${other}"`).join(', ')})` : ''}`,
      hint: `${nearest ? `Did you mean \`${nearest}\`? ` : ''}Known keys here: ${known.join(', ')}. Unknown keys are refused rather than ignored, so a typo in ${file} cannot silently change what runs.`,
    };
  }
  return { field: fieldPath(issue.path), problem: issue.message, hint: undefined };
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`)).join('') || '(default export)';
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, file: string, component?: string, prefix: readonly PropertyKey[] = []): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  if (value === undefined) throw errors.noDefaultExport(file, component ?? '', (schema as z.ZodType) === versionSchema ? 'defineVersion({...})' : 'defineUpgrade({...})', []);
  const { field, problem, hint } = describeIssue(schema, result.error, file);
  const full = prefix.length === 0 ? field : field === '(default export)' ? fieldPath(prefix) : `${fieldPath(prefix)}${field.startsWith('[') ? '' : '.'}${field}`;
  throw errors.manifestInvalid(file, full, problem, component, hint);
}

/**
 * Validates what a `metadata()` hook returned, with the same rules as the definitions.
 *
 * @example
 * ```ts
 * validateMetadata('plugins/mod/assign/db/upgrade.ts', 'mod_assign', await upgrade.metadata(2024010100))
 * ```
 */
export function validateMetadata(file: string, component: string, value: unknown): UpgradeMetadata {
  const result = metadataSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.path.length === 0 && issue.code !== 'unrecognized_keys') throw errors.metadataInvalid(file, component, '(result)', issue.message);
  const { field, problem, hint } = describeIssue(metadataSchema, result.error, file);
  throw errors.metadataInvalid(file, component, field, problem, hint);
}

/** Validates a `version.ts` default export and checks its name against its directory. */
export function validateVersion(file: string, value: unknown, expectedComponent: string): VersionDefinition {
  const manifest = parseOrThrow(versionSchema, value, file, expectedComponent) as VersionDefinition;
  if (manifest.component !== expectedComponent) throw errors.componentNameMismatch(file, manifest.component, expectedComponent);
  return manifest;
}

/** Validates a `db/upgrade.ts` default export against its component's version. */
export function validateUpgrade(file: string, value: unknown, manifest: VersionDefinition): UpgradeDefinition {
  const component = manifest.component;
  const parsed = parseOrThrow(upgradeSchema, value, file, component);
  const steps = parsed.steps.map((step, index) =>
    parseOrThrow<unknown>(
      (step as { phase?: unknown }).phase === 'background' ? backgroundStepSchema : (step as { phase?: unknown }).phase === 'manual' ? manualStepSchema : runStepSchema,
      step, file, component, ['steps', index],
    ),
  );
  const upgrade = { ...parsed, steps } as unknown as UpgradeDefinition;
  const versions = new Set<number>();
  const ids = new Set<string>();
  let previous = 0;
  for (const step of upgrade.steps) {
    if (ids.has(step.id)) throw errors.duplicateStep(file, component, 'id', step.id);
    if (versions.has(step.version)) throw errors.duplicateStep(file, component, 'version', String(step.version));
    if (step.version < previous) throw errors.stepsOutOfOrder(file, component, step.id, step.version, previous);
    if (step.version > manifest.version) throw errors.stepAboveVersion(file, component, step.id, step.version, manifest.version);
    // A pre step runs while every front still runs the old code: nothing but `none` is safe then.
    if (step.phase === 'pre' && step.outage !== 'none') throw errors.preStepNotNone(file, component, step.id, step.outage);
    for (const prerequisite of step.after ?? []) {
      const [owner, id] = prerequisite.split('/') as [string, string];
      // Within the component the id must be an earlier step; other components are checked by the plan.
      if (owner === component && !upgrade.steps.some((other) => other.id === id && other.version < step.version)) {
        throw errors.unknownPrerequisite(file, component, step.id, prerequisite, 'no earlier step of this component has that id');
      }
    }
    ids.add(step.id);
    versions.add(step.version);
    previous = step.version;
  }
  return upgrade;
}
