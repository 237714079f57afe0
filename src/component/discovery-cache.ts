import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, type BigIntStats } from 'node:fs';
import { dirname, join, parse, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VersionDefinition } from './definitions.ts';
import type { DefinitionsHash } from './definitions-hash.ts';

/**
 * The discovery cache: what discovery learnt of each component (its validated `version.ts`
 * and the fingerprint of its `db/`), kept in `<root>/.outageless/discovery-cache.json` so a
 * later run need not import every `version.ts` again (on a 500-component site that import is
 * most of `upgrade --is-pending`).
 *
 * An entry is used only when every file it was read from has the same size, mtime and ctime
 * (nanoseconds) as then. Those files are:
 * - `version.ts` and every file it imports by a relative path, transitively;
 * - `db/` itself (its mtime moves when a file is added, removed or renamed) and each file in it;
 * - the `package.json` files Node consults for the module type of those files (the nearest
 *   one of each directory, and every directory on the way there, where a new one would win).
 * The whole cache is dropped when outageless or Node is another build (the files of this
 * module and its neighbours, the package version, the Node version).
 *
 * Not cached (always imported): a `version.ts` that imports anything but `outageless` and
 * relative files, imports at run time (`import()`, `require`), or names a global through which
 * it could compute a value that no file holds (`process`, `Date`, `Math.random`, …). That word
 * list is a safety net, not a proof: a value the cache cannot see (a file read through a
 * relative import of a module that reads it, say) is cached as first computed. Set
 * `OUTAGELESS_DISCOVERY_CACHE=0` for such a site.
 *
 * Failures are never cached: a component that fails to load is loaded (and fails) again.
 */

/** Bumped when the cache's shape changes; an older file is ignored and rewritten. */
const FORMAT = 1;

/** `size:mtimeNs:ctimeNs`, or `-` for a path that does not exist. */
type Stamp = string;

/** One component as the cache holds it. Paths are relative to the site root. */
interface Entry {
  readonly name: string;
  readonly type: string;
  readonly parent: string | null;
  /** Every file the entry depends on, with its stamp when the entry was made. */
  readonly files: Readonly<Record<string, Stamp>>;
  readonly manifest: VersionDefinition;
  readonly definitions: DefinitionsHash;
}

interface CacheFile {
  readonly format: number;
  readonly engine: string;
  /** Component directory (relative to the root) → entry. */
  readonly components: Readonly<Record<string, Entry>>;
}

/** What a component is recorded under, and what the cache hands back. */
export interface CachedComponent {
  readonly manifest: VersionDefinition;
  readonly definitions: DefinitionsHash;
}

/** Where the cache of a site lives. */
export function discoveryCachePath(root: string): string {
  return join(root, '.outageless', 'discovery-cache.json');
}

/**
 * True unless `OUTAGELESS_DISCOVERY_CACHE` is `0`, `false`, `off` or `no`.
 *
 * @example
 * ```ts
 * process.env.OUTAGELESS_DISCOVERY_CACHE = '0'
 * discoveryCacheEnabled() // false: every discovery imports every version.ts
 * ```
 */
export function discoveryCacheEnabled(): boolean {
  const setting = process.env.OUTAGELESS_DISCOVERY_CACHE?.trim().toLowerCase();
  return !(setting === '0' || setting === 'false' || setting === 'off' || setting === 'no');
}

function statOf(path: string): BigIntStats | undefined {
  // bigint: mtimeMs as a double loses the nanoseconds that tell two quick edits apart.
  return statSync(path, { bigint: true, throwIfNoEntry: false });
}

/** A file's `size:mtimeNs:ctimeNs`, or `-` when it does not exist (the import check's cache keys by it too). */
export function stampOf(path: string): string {
  const info = statOf(path);
  return info ? `${info.size}:${info.mtimeNs}:${info.ctimeNs}` : '-';
}

let engineKey: string | undefined;

/**
 * Which build of outageless and Node made the cache: a cached manifest was validated by this
 * code, so a newer rule (a stricter version check) must see every manifest again.
 */
export function engine(): string {
  if (engineKey !== undefined) return engineKey;
  const here = fileURLToPath(import.meta.url);
  const { dir, ext } = parse(here);
  const modules = ['discover', 'discovery-cache', 'manifest', 'definitions', 'definitions-hash', 'load'].map((name) => join(dir, `${name}${ext}`));
  const packageJson = resolve(dir, '..', '..', 'package.json');
  engineKey = [FORMAT, process.version, ...[packageJson, ...modules].map((file) => `${relative(dir, file)}=${stampOf(file)}`)].join('|');
  return engineKey;
}

/** Plain JSON data, so what is read back is what was written (no functions, undefined or NaN). */
function isPlainData(value: unknown): boolean {
  if (typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isPlainData);
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return false;
  return Object.values(value).every(isPlainData);
}

function isEntry(value: unknown): value is Entry {
  const entry = value as Partial<Entry> | null;
  return (
    typeof entry === 'object' && entry !== null &&
    typeof entry.name === 'string' && typeof entry.type === 'string' && (entry.parent === null || typeof entry.parent === 'string') &&
    typeof entry.files === 'object' && entry.files !== null && Object.values(entry.files).every((stamp) => typeof stamp === 'string') &&
    typeof entry.manifest === 'object' && entry.manifest !== null && entry.manifest.kind === 'version' &&
    entry.manifest.component === entry.name && Number.isInteger(entry.manifest.version) &&
    typeof entry.definitions === 'object' && entry.definitions !== null && typeof entry.definitions.hash === 'string' &&
    typeof entry.definitions.files === 'object' && entry.definitions.files !== null
  );
}

/** Reads the cache; anything unreadable, corrupt or from another build is no cache. */
function readCache(file: string): { components: Readonly<Record<string, Entry>>; writtenNs: bigint } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    // The cache's own mtime, taken from the file read: entries newer than it are suspect (below).
    const writtenNs = fstatSync(fd, { bigint: true }).mtimeNs;
    const parsed = JSON.parse(readFileSync(fd, 'utf8')) as Partial<CacheFile> | null;
    if (parsed?.format !== FORMAT || parsed.engine !== engine() || typeof parsed.components !== 'object' || parsed.components === null) return undefined;
    return { components: parsed.components, writtenNs };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * One discovery's use of the cache: look components up, record the ones loaded afresh, and
 * write the result once discovery has succeeded.
 *
 * @example
 * ```ts
 * const cache = openDiscoveryCache(root)
 * const hit = cache?.lookup(dir, 'mod_assign', 'mod', undefined)
 * if (!hit) {
 *   const recording = cache?.prepare(dir, versionFile)   // stamps taken before the import
 *   const manifest = …import and validate version.ts…
 *   await recording?.then((r) => r?.record({ manifest, definitions }))
 * }
 * cache?.save()   // only after the whole discovery succeeded
 * ```
 */
export interface DiscoveryCache {
  /** The cached result for the component in `dir`, when none of its files changed. */
  lookup(dir: string, name: string, type: string, parent: string | undefined): CachedComponent | undefined;
  /**
   * Stamps the files a fresh load of `dir` depends on, before it is imported; undefined
   * when the component cannot be cached (its version.ts imports or uses what no stamp covers).
   */
  prepare(dir: string, name: string, type: string, parent: string | undefined): Promise<{ record(result: CachedComponent): void } | undefined>;
  /** Writes the cache when anything changed. Never throws: a cache that cannot be written is no cache. */
  save(): void;
}

/**
 * Opens the cache of the site at `root` (an absolute path), or returns undefined when the
 * cache is switched off by `OUTAGELESS_DISCOVERY_CACHE=0`.
 */
export function openDiscoveryCache(root: string): DiscoveryCache | undefined {
  if (!discoveryCacheEnabled()) return undefined;
  const file = discoveryCachePath(root);
  const previous = readCache(file);
  const next = new Map<string, Entry>();
  let changed = previous === undefined;
  // Directories whose package.json chain is already stamped in this discovery.
  const scopes = new Map<string, Readonly<Record<string, Stamp>>>();

  /**
   * The package.json files that decide the module type of a file in `dir`: each directory's
   * from `dir` up to the first that has one. A package.json added lower down would win, so
   * each missing one is stamped too.
   */
  // Plain string work: path.relative/resolve on thousands of files cost more than their stats.
  const prefix = root.endsWith(sep) ? root : `${root}${sep}`;
  const key = (path: string): string => (path.startsWith(prefix) ? path.slice(prefix.length) : relative(root, path));
  const absolute = (path: string): string => (path.startsWith('..') || path === '' ? resolve(root, path) : `${prefix}${path}`);
  // Stamps as they are now, each path stat'ed once per discovery (every entry lists the site's package.json).
  const current = new Map<string, Stamp>();
  const currentStamp = (path: string): Stamp => {
    let stamp = current.get(path);
    if (stamp !== undefined) return stamp;
    const info = statOf(absolute(path));
    if (!info) stamp = '-';
    // Racy (as in git's index): a file changed in the clock tick the cache was written in
    // could change again without moving its mtime. It matches no stamp, so it loads afresh.
    else if (info.mtimeNs >= previous!.writtenNs || info.ctimeNs >= previous!.writtenNs) stamp = 'racy';
    else stamp = `${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
    current.set(path, stamp);
    return stamp;
  };
  const scopeOf = (dir: string): Readonly<Record<string, Stamp>> => {
    const known = scopes.get(dir);
    if (known) return known;
    const candidate = join(dir, 'package.json');
    const stamp = stampOf(candidate);
    const parent = dirname(dir);
    const stamps = { [key(candidate)]: stamp, ...(stamp === '-' && parent !== dir ? scopeOf(parent) : {}) };
    scopes.set(dir, stamps);
    return stamps;
  };

  return {
    lookup(dir, name, type, parent) {
      const entry = previous?.components[key(dir)];
      if (!isEntry(entry) || entry.name !== name || entry.type !== type || entry.parent !== (parent ?? null)) return undefined;
      for (const [path, stamp] of Object.entries(entry.files)) {
        if (currentStamp(path) !== stamp) return undefined;
      }
      next.set(key(dir), entry);
      return { manifest: entry.manifest, definitions: entry.definitions };
    },

    async prepare(dir, name, type, parent) {
      const sources = await sourceFiles(join(dir, 'version.ts'));
      if (!sources) return undefined;
      const files: Record<string, Stamp> = {};
      for (const source of sources) {
        files[key(source)] = stampOf(source);
        Object.assign(files, scopeOf(dirname(source)));
      }
      // db/ itself: its mtime moves when a file is added, removed or renamed in it.
      const db = join(dir, 'db');
      files[key(db)] = stampOf(db);
      if (files[key(db)] !== '-') {
        for (const entry of readdirSync(db, { withFileTypes: true })) {
          if (entry.isFile()) files[key(join(db, entry.name))] = stampOf(join(db, entry.name));
        }
      }
      return {
        record({ manifest, definitions }) {
          if (!isPlainData(manifest) || !isPlainData(definitions)) return;
          next.set(key(dir), { name, type, parent: parent ?? null, files, manifest, definitions });
          changed = true;
        },
      };
    },

    save() {
      if (!changed && next.size === Object.keys(previous?.components ?? {}).length) return;
      const content: CacheFile = { format: FORMAT, engine: engine(), components: Object.fromEntries(next) };
      // Written beside and renamed over: a reader sees the old file or the new one, never half.
      const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      try {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(temporary, `${JSON.stringify(content)}\n`);
        renameSync(temporary, file);
      } catch {
        // A read-only site (an image, a mounted release) still works, uncached.
        try {
          unlinkSync(temporary);
        } catch {
          // Nothing was written.
        }
      }
    },
  };
}

/**
 * Words in a version file through which it could compute a value no file holds: the
 * environment, the clock, randomness, the network, output. Matching any of them (even in a
 * comment) only means that component is imported every time.
 */
const UNCACHEABLE_WORDS = /\b(?:process|globalThis|global|Date|Math\s*\.\s*random|crypto|performance|fetch|require|eval|Function|console|setTimeout|setInterval|setImmediate|queueMicrotask|WebAssembly|Deno|Bun)\b/;

const ONLY_OUTAGELESS: ReadonlySet<string> = new Set(['outageless']);

/**
 * `version` and every file it imports by a relative path, transitively (the import check's
 * cache passes `packages` to allow `kysely` too, as step files may import it); undefined when one
 * of them imports anything else (a package other than `outageless`, a built-in, an import at
 * run time) or names an {@link UNCACHEABLE_WORDS} global. Any failure to read or parse a file
 * also means "not cacheable": the import that follows reports the real problem.
 */
export async function sourceFiles(version: string, packages: ReadonlySet<string> = ONLY_OUTAGELESS): Promise<string[] | undefined> {
  const { listImports, plainPackageImports, resolveLocal } = await import('./import-lint.ts');
  const files: string[] = [];
  const queue = [version];
  const seen = new Set<string>();
  try {
    while (queue.length > 0) {
      const file = queue.shift()!;
      if (seen.has(file)) continue;
      seen.add(file);
      files.push(file);
      const source = readFileSync(file, 'utf8');
      if (UNCACHEABLE_WORDS.test(source)) return undefined;
      // The common version.ts imports outageless on a plain line and nothing else: read from the
      // text already here, without the type stripper and lexer (a second pass over every file on
      // a cold 500-component discovery).
      for (const found of plainPackageImports(source) ?? (await listImports(file, '', file))) {
        if (found.specifier === undefined || found.form === 'dynamic-import' || found.form === 'require') return undefined;
        if (packages.has(found.specifier)) continue;
        const target = resolveLocal(file, found.specifier);
        if (target === undefined) return undefined;
        queue.push(target);
      }
    }
  } catch {
    return undefined;
  }
  return files;
}
