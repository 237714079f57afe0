import { pathToFileURL } from 'node:url';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { errors, isOutagelessError, noteCommonjsPackage } from '../errors.ts';
import { finishesLoading } from './import-check.ts';
import { knownToFinish, prepareVerdict } from './import-check-cache.ts';

/** How long one import, or one `metadata()` call, may take before it is reported. */
export const DEFAULT_LOAD_TIMEOUT_MS = 10_000;

/**
 * The load time limit: `OUTAGELESS_LOAD_TIMEOUT_MS` when set to a positive number, else 10 s.
 *
 * @example
 * ```ts
 * process.env.OUTAGELESS_LOAD_TIMEOUT_MS = '2000'
 * loadTimeoutMs() // 2000
 * ```
 */
export function loadTimeoutMs(): number {
  const configured = Number(process.env.OUTAGELESS_LOAD_TIMEOUT_MS);
  return Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_LOAD_TIMEOUT_MS;
}

/**
 * Settles with `work`, or rejects with `onTimeout()` once `limitMs` has passed. The timer is
 * kept referenced on purpose: a top-level await that never settles leaves Node nothing else to
 * wait for, and it would end the process with exit 13 instead of our coded error.
 *
 * @example
 * ```ts
 * await withTimeLimit(upgrade.metadata(2024010100), 10_000, () => errors.metadataTimeout(file, 'mod_assign', 10_000))
 * ```
 */
export async function withTimeLimit<T>(work: Promise<T> | T, limitMs: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), limitMs);
  });
  try {
    return await Promise.race([Promise.resolve(work), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Imports a component file (TypeScript, run by Node's type stripping) and returns its
 * default export. A file that fails to load becomes `OUTAGELESS_ERR_LOAD_FAILED` naming it;
 * one that does not finish loading within {@link loadTimeoutMs} becomes `OUTAGELESS_ERR_LOAD_TIMEOUT`.
 *
 * The URL carries the file's size, mtime and ctime, so a long-lived process (a front, a test)
 * that sees an edited file loads the new text instead of Node's cached module.
 */
export async function importDefault(file: string, component?: string): Promise<unknown> {
  return ((await importModule(file, component)) as { default?: unknown }).default;
}

/** Imports a component file and returns the whole module (a runtime's named handlers, say). */
export async function importModule(file: string, component?: string): Promise<Record<string, unknown>> {
  return importWithLimit(file, component, false);
}

async function moduleUrl(file: string): Promise<string> {
  const info = await stat(file, { bigint: true });
  // The ctime too: a file rewritten to the same size with its mtime put back (tar, rsync -t, a
  // test pinning mtimes to whole seconds) must not come back as the module cached before.
  // Integers only: a fractional mtime ('…-1795317435775.826') looks like a file extension to Vite.
  return `${pathToFileURL(file).href}?v=${info.size}-${info.mtimeNs}-${info.ctimeNs}`;
}

async function importWithLimit(file: string, component: string | undefined, precheck: boolean, root?: string): Promise<Record<string, unknown>> {
  const limit = loadTimeoutMs();
  try {
    const url = await moduleUrl(file);
    // An endless synchronous loop never yields to a timer here, so definition files are
    // first loaded in a worker that can be terminated (import-check.ts).
    // A file of the site at `root` that finished before and has not changed is not checked
    // again (import-check-cache.ts): a warm plan starts no worker.
    if (precheck && !(root !== undefined && knownToFinish(root, file))) {
      const recording = root === undefined ? undefined : await prepareVerdict(root, file);
      if (!(await finishesLoading(url, limit))) throw errors.loadTimeout(file, limit, component);
      recording?.record();
    }
    return await withTimeLimit(import(url) as Promise<Record<string, unknown>>, limit, () => errors.loadTimeout(file, limit, component));
  } catch (error) {
    if (isOutagelessError(error, errors.loadTimeout.code)) throw error;
    await noteModuleType(file, error);
    throw errors.loadFailed(file, error, component);
  }
}

/**
 * A syntax error in a file under a package.json that says `"type": "commonjs"` is, in a
 * component file, that type's doing: Node parsed ES module syntax as CommonJS. Noted on the
 * cause, so the error's fix says to set `"type": "module"` instead of blaming the TypeScript.
 * The nearest package.json decides, as it does for Node.
 */
async function noteModuleType(file: string, error: unknown): Promise<void> {
  if (!(error instanceof SyntaxError)) return;
  for (let dir = dirname(resolve(file)); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    const text = await readFile(manifest, 'utf8').catch(() => undefined);
    if (text !== undefined) {
      let type: unknown;
      try {
        type = (JSON.parse(text) as { type?: unknown }).type;
      } catch {
        return;
      }
      if (type === 'commonjs') noteCommonjsPackage(error, manifest);
      return;
    }
    if (dirname(dir) === dir) return;
  }
}

/** Like {@link importDefault}, but returns undefined when the file does not exist. */
export async function importOptional(file: string, component?: string): Promise<unknown> {
  try {
    await stat(file);
  } catch {
    return undefined;
  }
  return importDefault(file, component);
}

/** What {@link importDefinitionFile} found. */
export type DefinitionFile =
  | { readonly kind: 'missing' }
  | { readonly kind: 'no-default'; readonly named: readonly string[] }
  | { readonly kind: 'loaded'; readonly value: unknown };

/**
 * Imports a definition file, telling apart a file that does not exist from one that exists
 * but has no default export: the first means "nothing declared", the second is a mistake.
 * The file is first loaded in a worker, so even an endless loop at import is reported
 * (`OUTAGELESS_ERR_LOAD_TIMEOUT`) instead of hanging the process. With the site's `root`,
 * a file that finished before and has not changed skips that worker (import-check-cache.ts).
 *
 * @example
 * ```ts
 * const found = await importDefinitionFile('plugins/mod/assign/db/upgrade.ts', 'mod_assign')
 * if (found.kind === 'no-default') throw errors.noDefaultExport(file, 'mod_assign', 'defineUpgrade({...})', found.named)
 * ```
 */
export async function importDefinitionFile(file: string, component?: string, root?: string): Promise<DefinitionFile> {
  try {
    await stat(file);
  } catch {
    return { kind: 'missing' };
  }
  const module = await importWithLimit(file, component, true, root);
  if (module.default === undefined) return { kind: 'no-default', named: Object.keys(module).filter((name) => name !== 'default') };
  return { kind: 'loaded', value: module.default };
}
