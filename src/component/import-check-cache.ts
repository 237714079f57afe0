import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { discoveryCacheEnabled, engine, sourceFiles, stampOf } from './discovery-cache.ts';

/**
 * The import check's verdicts, kept: a `db/` file that finished loading in the check's worker
 * (import-check.ts) is not checked again while none of the files it was read from changed.
 * On a warm `upgrade --is-maintenance-required` that is the worker not started at all.
 *
 * Kept in `<root>/.outageless/import-check-cache.json`, keyed as the discovery cache keys its
 * entries: the size, mtime and ctime (nanoseconds) of the file, of every file it imports by a
 * relative path (transitively) and of the package.json files that decide their module type,
 * under the same build of outageless and Node. Only "finished" is kept: a file that hung is
 * checked (and reported) every time. A file that imports anything but `outageless`, `kysely`
 * and relative files, or names a global through which it could compute a value no file holds
 * (`process`, `Date`, …), is checked every time. `OUTAGELESS_DISCOVERY_CACHE=0` turns this
 * cache off with the discovery cache.
 *
 * The real import still runs under its time limit: only the pre-check is skipped.
 */

const FORMAT = 1;
const PACKAGES: ReadonlySet<string> = new Set(['outageless', 'kysely']);

interface CacheFile {
  readonly format: number;
  readonly engine: string;
  /** File (relative to the root) → the stamps of every file its verdict was read from. */
  readonly finished: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

interface Verdicts {
  readonly file: string;
  readonly root: string;
  readonly finished: Map<string, Readonly<Record<string, string>>>;
  /** The cache file's mtime when read: a stamp at or after it may hide a later edit (racy). */
  writtenNs: bigint | undefined;
  dirty: boolean;
}

/** Where the verdicts of a site live. */
export function importCheckCachePath(root: string): string {
  return join(root, '.outageless', 'import-check-cache.json');
}

const open = new Map<string, Verdicts>();
/** One exit listener for every site's verdicts, however long the process lives. */
let flushOnExit = false;

function verdictsOf(root: string): Verdicts {
  let verdicts = open.get(root);
  if (verdicts) return verdicts;
  const file = importCheckCachePath(root);
  const finished = new Map<string, Readonly<Record<string, string>>>();
  let writtenNs: bigint | undefined;
  try {
    const text = readFileSync(file, 'utf8');
    writtenNs = statSync(file, { bigint: true }).mtimeNs;
    const parsed = JSON.parse(text) as Partial<CacheFile> | null;
    if (parsed?.format === FORMAT && parsed.engine === engine() && typeof parsed.finished === 'object' && parsed.finished !== null) {
      for (const [path, stamps] of Object.entries(parsed.finished)) {
        if (typeof stamps === 'object' && stamps !== null && Object.values(stamps).every((stamp) => typeof stamp === 'string')) finished.set(path, stamps);
      }
    }
  } catch {
    // No cache, or an unreadable one: every file is checked, and the cache is rewritten.
  }
  verdicts = { file, root, finished, writtenNs, dirty: false };
  open.set(root, verdicts);
  return verdicts;
}

/** Whether `stamp` (of a file as it is now) is one the cache may trust: not made in or after its own write. */
function trusted(stamp: string, writtenNs: bigint | undefined): boolean {
  if (stamp === '-') return true;
  const [, mtime, ctime] = stamp.split(':');
  return writtenNs !== undefined && BigInt(mtime!) < writtenNs && BigInt(ctime!) < writtenNs;
}

/**
 * True when `file` (absolute, under `root`) finished loading in an earlier check and none of
 * the files that verdict was read from changed since.
 *
 * @example
 * ```ts
 * if (!knownToFinish(code.root, file)) await finishesLoading(url, limit)
 * ```
 */
export function knownToFinish(root: string, file: string): boolean {
  if (!discoveryCacheEnabled()) return false;
  const verdicts = verdictsOf(root);
  const stamps = verdicts.finished.get(relative(root, file));
  if (!stamps) return false;
  for (const [path, stamp] of Object.entries(stamps)) {
    const now = stampOf(resolve(root, path));
    if (now !== stamp || !trusted(now, verdicts.writtenNs)) return false;
  }
  return true;
}

/** The package.json files that decide the module type of a file in `dir` (each one up to the first that exists). */
function scopeFiles(dir: string): string[] {
  const files: string[] = [];
  for (let current = dir; ; current = dirname(current)) {
    const candidate = join(current, 'package.json');
    files.push(candidate);
    if (stampOf(candidate) !== '-' || dirname(current) === current) return files;
  }
}

/**
 * Stamps what `file`'s verdict depends on, before the check runs (an edit during the check
 * then matches no stamp); `record()` keeps the verdict once the check said "finished".
 * Undefined when the file cannot be cached (see the module comment).
 *
 * @example
 * ```ts
 * const recording = await prepareVerdict(code.root, file)
 * if (await finishesLoading(url, limit)) recording?.record()
 * ```
 */
export async function prepareVerdict(root: string, file: string): Promise<{ record(): void } | undefined> {
  if (!discoveryCacheEnabled()) return undefined;
  const sources = await sourceFiles(file, PACKAGES);
  if (!sources) return undefined;
  const stamps: Record<string, string> = {};
  for (const source of sources) {
    for (const path of [source, ...scopeFiles(dirname(source))]) stamps[relative(root, path)] = stampOf(path);
  }
  return {
    record() {
      const verdicts = verdictsOf(root);
      verdicts.finished.set(relative(root, file), stamps);
      if (!verdicts.dirty) {
        verdicts.dirty = true;
        // Once, however many files were checked; a process that exits first still writes it.
        if (!flushOnExit) {
          flushOnExit = true;
          process.once('exit', () => open.forEach(save));
        }
        setImmediate(() => save(verdicts)).unref();
      }
    },
  };
}

function save(verdicts: Verdicts): void {
  if (!verdicts.dirty) return;
  verdicts.dirty = false;
  const content: CacheFile = { format: FORMAT, engine: engine(), finished: Object.fromEntries(verdicts.finished) };
  // Written beside and renamed over: a reader sees the old file or the new one, never half.
  const temporary = `${verdicts.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dirname(verdicts.file), { recursive: true });
    writeFileSync(temporary, `${JSON.stringify(content)}\n`);
    renameSync(temporary, verdicts.file);
    // What this process recorded is now as old as a cache read back from disk.
    verdicts.writtenNs = statSync(verdicts.file, { bigint: true }).mtimeNs;
  } catch {
    // A read-only site still works: its files are checked every time.
    try {
      unlinkSync(temporary);
    } catch {
      // Nothing was written.
    }
  }
}
