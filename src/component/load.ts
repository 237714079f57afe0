import { pathToFileURL } from 'node:url';
import { stat } from 'node:fs/promises';
import { errors } from '../errors.ts';

/**
 * Imports a component file (TypeScript, run by Node's type stripping) and returns its
 * default export. A file that fails to load becomes `OUTAGELESS_ERR_LOAD_FAILED` naming it.
 *
 * The URL carries the file's size and mtime, so a long-lived process (a front, a test)
 * that sees an edited file loads the new text instead of Node's cached module.
 */
export async function importDefault(file: string, component?: string): Promise<unknown> {
  return ((await importModule(file, component)) as { default?: unknown }).default;
}

/** Imports a component file and returns the whole module (a runtime's named handlers, say). */
export async function importModule(file: string, component?: string): Promise<Record<string, unknown>> {
  try {
    const info = await stat(file);
    // Integers only: a fractional mtime ('…-1795317435775.826') looks like a file extension to Vite.
    const url = `${pathToFileURL(file).href}?v=${info.size}-${Math.trunc(info.mtimeMs * 1000)}`;
    return (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw errors.loadFailed(file, error, component);
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
