import type { Component, SiteCode } from '../component/discover.ts';
import { errors } from '../errors.ts';

/** Plugin types upgraded first, in this order; other types follow alphabetically, `local` last. */
export const DEFAULT_UPGRADE_ORDER: readonly string[] = ['theme', 'auth', 'format', 'block', 'mod'];

/**
 * Orders components for install and upgrade (DESIGN §4.1): core first, then plugin types in
 * the configured order, each subplugin right after its parent, alphabetical within a type;
 * declared dependencies win over all of that (topological order), and a cycle is an error.
 *
 * @example
 * ```ts
 * upgradeOrder(code).map((c) => c.name)
 * // ['core', 'theme_clean', 'auth_manual', 'format_topics', 'block_news',
 * //  'mod_assign', 'assignsubmission_file', 'mod_quiz', 'local_reports']
 * ```
 */
export function upgradeOrder(code: SiteCode): Component[] {
  const typeOrder = code.core.manifest.upgradeOrder ?? DEFAULT_UPGRADE_ORDER;
  const rankOfType = (type: string) => {
    const index = typeOrder.indexOf(type);
    if (index >= 0) return `0${String(index).padStart(3, '0')}`;
    return type === 'local' ? '2' : `1${type}`;
  };
  // A sort key per component: subplugins borrow their parent's key so they sit right after it.
  const key = (component: Component): string => {
    if (component.name === 'core') return '';
    if (component.parent) {
      const parent = code.components.get(component.parent)!;
      return `${key(parent)}\u0001${component.type}\u0001${component.name}`;
    }
    return `${rankOfType(component.type)}\u0000${component.name}`;
  };
  const preferred = [...code.components.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return topological(preferred, code);
}

/** Kahn's algorithm, always taking the earliest ready component in preferred order. */
function topological(preferred: readonly Component[], code: SiteCode): Component[] {
  const needs = new Map<string, Set<string>>();
  for (const component of preferred) {
    const deps = new Set(Object.keys(component.manifest.dependencies ?? {}).filter((name) => code.components.has(name)));
    // A subplugin upgrades with its parent, so it needs the parent first.
    if (component.parent) deps.add(component.parent);
    needs.set(component.name, deps);
  }
  const done = new Set<string>();
  const ordered: Component[] = [];
  while (ordered.length < preferred.length) {
    const next = preferred.find((c) => !done.has(c.name) && [...needs.get(c.name)!].every((dep) => done.has(dep)));
    if (!next) {
      const cycle = findCycle(preferred.filter((c) => !done.has(c.name)), needs);
      throw errors.dependencyCycle(cycle, code.components.get(cycle[0]!)?.versionFile ?? '');
    }
    done.add(next.name);
    ordered.push(next);
  }
  return ordered;
}

function findCycle(remaining: readonly Component[], needs: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const names = new Set(remaining.map((c) => c.name));
  // Every remaining component waits on another remaining one, so walking "needs" must loop.
  let current = remaining[0]!.name;
  const path: string[] = [];
  while (!path.includes(current)) {
    path.push(current);
    current = [...needs.get(current)!].find((dep) => names.has(dep))!;
  }
  return [...path.slice(path.indexOf(current)), current];
}
