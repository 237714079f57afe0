import { errorFactory } from '../errors.ts';

/**
 * Typed errors of `outageless init`. Each is raised before the first file is written, so a
 * refused init leaves the directory as it was. Codes are part of the public contract (runbooks
 * grep for them): never rename one.
 *
 * @example
 * ```ts
 * if (existsSync(join(root, 'core'))) throw initErrors.siteExists(root, ['core/'])
 * ```
 */
export const initErrors = {
  /** The directory already has a site's code: init would write over its components. */
  siteExists: errorFactory('OUTAGELESS_ERR_INIT_SITE_EXISTS', (dir: string, found: readonly string[]) => ({
    message: `${dir} already holds a site (${found.join(', ')}); nothing was written`,
    location: { file: dir },
    hint: 'Run `outageless init` in a new or empty directory, or pass --force to write the scaffold\'s files over these (files it does not write stay as they are).',
  })),
  /** package.json says `"type": "commonjs"` (or another type): Node would run the components as CommonJS. */
  packageType: errorFactory('OUTAGELESS_ERR_INIT_PACKAGE_TYPE', (file: string, type: unknown) => ({
    message: `${file} says "type": ${JSON.stringify(type)}, but component files are ES modules; nothing was written`,
    location: { file, field: 'type' },
    hint: 'Set "type": "module" in package.json (or pass --force and init sets it), or run init in a directory of its own.',
  })),
  /** package.json exists but is not a JSON object init can add its fields to. */
  packageJsonInvalid: errorFactory('OUTAGELESS_ERR_INIT_PACKAGE_JSON', (file: string, problem: string) => ({
    message: `${file} cannot be read as a package.json: ${problem}; nothing was written`,
    location: { file },
    hint: 'Fix package.json (it must be a JSON object), or remove it and run init again.',
  })),
  /** A file could not be written (permissions, a full or read-only disk); files written before it stay. */
  writeFailed: errorFactory('OUTAGELESS_ERR_INIT_WRITE_FAILED', (file: string, cause: unknown) => ({
    message: `cannot write ${file}: ${cause instanceof Error ? cause.message : String(cause)}`,
    location: { file },
    hint: 'Make the directory writable (and check the disk has space), then run init again with --force to finish the scaffold.',
    cause,
  })),
  /** The target exists and is a file. */
  notADirectory: errorFactory('OUTAGELESS_ERR_INIT_NOT_A_DIRECTORY', (path: string) => ({
    message: `${path} is a file, not a directory; nothing was written`,
    location: { file: path },
    hint: 'Name a directory (a new one is created) for the site.',
  })),
} as const;
