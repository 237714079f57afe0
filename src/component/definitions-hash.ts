import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The fingerprint of a component's `db/` directory, the way Moodle hashes `db/*.php`: only
 * files directly inside it count. Per-file hashes are kept as well, so a verdict can name
 * the file that changed.
 */
export interface DefinitionsHash {
  /** sha256 over the sorted file names and contents; '' when there is no `db/`. */
  readonly hash: string;
  /** File name → sha256 of its bytes. */
  readonly files: Readonly<Record<string, string>>;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

export function hashDefinitions(componentDir: string): DefinitionsHash {
  const dir = join(componentDir, 'db');
  // Synchronous on purpose: these are a few small files per component, and on a site of
  // hundreds of components the promise overhead of async reads costs more than the reads.
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return { hash: '', files: {} };
  }
  const names = entries.filter((entry) => entry.isFile()).map((entry) => entry.name).sort();
  const files: Record<string, string> = {};
  for (const name of names) files[name] = sha256(readFileSync(join(dir, name)));
  const hash = names.length === 0 ? '' : sha256(names.map((name) => `${name}\0${files[name]}\n`).join(''));
  return { hash, files };
}

/** Names of files added, removed or changed between two hashes, sorted. */
export function changedDefinitionFiles(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((name) => before[name] !== after[name]).sort();
}
