import { z } from 'zod';
import { errors } from '../errors.ts';
import type { UpgradeDefinition, VersionDefinition } from './definitions.ts';

/**
 * Validation of what plugin authors write. Each problem becomes a typed error naming the
 * file and the field, because "invalid manifest" alone sends an author hunting.
 */

const version = z.number({ error: 'must be an integer version (YYYYMMDDXX)' }).int('must be an integer version (YYYYMMDDXX)').positive('must be positive');
const componentName = z.string().regex(/^(core|[a-z][a-z0-9]*_[a-z][a-z0-9_]*)$/, 'must be "core" or "<type>_<name>" in lower case');

const versionSchema = z.object({
  kind: z.literal('version', { error: 'default export must come from defineVersion({...})' }),
  component: componentName,
  version,
  requires: version.optional(),
  release: z.string().optional(),
  codeIncrement: z.string().optional(),
  maturity: z.enum(['alpha', 'beta', 'rc', 'stable']).optional(),
  dependencies: z.record(componentName, version).optional(),
  maintenance: z.object({ disableable: z.boolean() }).optional(),
  subplugins: z.record(z.string().regex(/^[a-z][a-z0-9]*$/), z.string().min(1)).optional(),
  pluginTypes: z.array(z.string().regex(/^[a-z][a-z0-9]*$/)).optional(),
  upgradeOrder: z.array(z.string()).optional(),
});

const fn = z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function');
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a table or column name');
/** `<component>/<id>` of a prerequisite: a background migration or a step. */
const after = z.array(z.string().regex(/^(core|[a-z][a-z0-9]*_[a-z][a-z0-9_]*)\/[^\s/]+$/, 'must be "<component>/<id>"')).optional();

const runStepSchema = z.object({
  version,
  id: z.string().min(1, 'must be a non-empty, stable string'),
  description: z.string().optional(),
  outage: z.enum(['none', 'component', 'site']).optional(),
  phase: z.enum(['pre', 'main', 'post'], { error: 'must be "pre", "main", "post" or "background"' }).optional(),
  transaction: z.boolean().optional(),
  after,
  run: fn,
});

const backgroundStepSchema = z.object({
  phase: z.literal('background'),
  version,
  id: z.string().min(1, 'must be a non-empty, stable string'),
  description: z.string().optional(),
  table: identifier,
  key: identifier,
  batch: fn,
  targetBatchMs: z.number().int().positive().optional(),
  batchSize: z
    .object({ min: z.number().int().positive().optional(), initial: z.number().int().positive().optional(), max: z.number().int().positive().optional() })
    .optional(),
  after,
});



const upgradeSchema = z.object({
  kind: z.literal('upgrade', { error: 'default export must come from defineUpgrade({...})' }),
  // Each step is checked against its own shape in validateUpgrade: a background step is told
  // apart by its phase, and its error should name its own missing field, not run's.
  steps: z.array(z.object({}).passthrough()),
  metadata: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function').optional(),
});

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`)).join('') || '(default export)';
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, file: string, component?: string, prefix: readonly PropertyKey[] = []): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const problem = value === undefined ? 'file has no default export' : issue.message;
  throw errors.manifestInvalid(file, value === undefined ? 'default' : fieldPath([...prefix, ...issue.path]), problem, component);
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
    parseOrThrow<unknown>((step as { phase?: unknown }).phase === 'background' ? backgroundStepSchema : runStepSchema, step, file, component, ['steps', index]),
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
