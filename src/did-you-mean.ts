/**
 * "Did you mean" for names people type: a misspelt key in a definition file, a component
 * name on the command line.
 */

/** Edit distance (insertions, deletions, substitutions). */
function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known key nearest to `key`, when it is close enough to be a typo (at most a third of
 * its letters off).
 *
 * @example
 * ```ts
 * nearestKey('maintenence', ['maintenance', 'maturity']) // 'maintenance'
 * nearestKey('mod_asign', ['core', 'mod_assign']) // 'mod_assign'
 * ```
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = levenshtein(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.ceil(key.length / 3)) ? best.key : undefined;
}
