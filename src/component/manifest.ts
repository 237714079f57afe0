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

const stepSchema = z.object({
  version,
  id: z.string().min(1, 'must be a non-empty, stable string'),
  description: z.string().optional(),
  outage: z.enum(['none', 'component', 'site']).optional(),
  phase: z.enum(['pre', 'main', 'post'], { error: 'must be "pre", "main" or "post"' }).optional(),
  transaction: z.boolean().optional(),
  run: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function'),
});

const upgradeSchema = z.object({
  kind: z.literal('upgrade', { error: 'default export must come from defineUpgrade({...})' }),
  steps: z.array(stepSchema),
  metadata: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function').optional(),
});

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`)).join('') || '(default export)';
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, file: string, component?: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const problem = value === undefined ? 'file has no default export' : issue.message;
  throw errors.manifestInvalid(file, value === undefined ? 'default' : fieldPath(issue.path), problem, component);
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
  const upgrade = parseOrThrow(upgradeSchema, value, file, component) as UpgradeDefinition;
  const versions = new Set<number>();
  const ids = new Set<string>();
  let previous = 0;
  for (const step of upgrade.steps) {
    if (ids.has(step.id)) throw errors.duplicateStep(file, component, 'id', step.id);
    if (versions.has(step.version)) throw errors.duplicateStep(file, component, 'version', String(step.version));
    if (step.version < previous) throw errors.stepsOutOfOrder(file, component, step.id, step.version, previous);
    if (step.version > manifest.version) throw errors.stepAboveVersion(file, component, step.id, step.version, manifest.version);
    ids.add(step.id);
    versions.add(step.version);
    previous = step.version;
  }
  return upgrade;
}
