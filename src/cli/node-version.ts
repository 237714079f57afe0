import { readFileSync } from 'node:fs';
import { errorFactory, type OutagelessError } from '../errors.ts';

/**
 * The Node.js version check the `outageless` bin runs before it loads the CLI. An older Node
 * fails later, and unhelpfully, on the site's first `.ts` file ("Unknown file extension
 * .ts"); this names the version found and the one needed instead. Plain ES2023 with no
 * dependency but errors.ts, so it loads on the old Node it reports.
 */
export const nodeVersionErrors = {
  tooOld: errorFactory('OUTAGELESS_ERR_NODE_VERSION', (found: string, needed: string) => ({
    message: `outageless needs Node.js ${needed}, but this is Node.js ${found}; nothing was run`,
    location: { field: 'engines.node' },
    hint: `Install Node.js 24 (or ${needed.replace(/^>=\s*/, '')} at least) and run outageless with it; \`node --version\` shows which Node your shell runs.`,
  })),
} as const;

/** What the CLI reads of its own package.json. */
export interface OwnPackageJson {
  readonly version: string;
  readonly engines?: { readonly node?: string };
  readonly dependencies?: Readonly<Record<string, string>>;
}

let ownPackage: OwnPackageJson | undefined;

/**
 * outageless's own package.json, read once per process (the bin's version check, `--version`
 * and `init` all ask for it; the bin and the CLI share this module).
 *
 * @example
 * ```ts
 * ownPackageJson().version // => '0.1.0'
 * ```
 */
export function ownPackageJson(): OwnPackageJson {
  ownPackage ??= JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as OwnPackageJson;
  return ownPackage;
}

/** `engines.node` of this package, `>=22.12` unless it says otherwise. */
export function neededNodeRange(): string {
  return ownPackageJson().engines?.node ?? '>=22.12';
}

const parts = (version: string) => version.replace(/^v/, '').split('.').map((part) => Number.parseInt(part, 10) || 0);

/**
 * The error to print when `found` (`process.versions.node`) is below `needed` (a `>=X.Y[.Z]`
 * range, as engines.node says), else undefined.
 *
 * @example
 * ```ts
 * checkNodeVersion('20.20.2', '>=22.12')?.code // 'OUTAGELESS_ERR_NODE_VERSION'
 * checkNodeVersion('24.9.0', '>=22.12')        // undefined
 * ```
 */
export function checkNodeVersion(found: string, needed: string = neededNodeRange()): OutagelessError | undefined {
  const minimum = /^>=\s*v?(\d+(?:\.\d+){0,2})$/.exec(needed.trim())?.[1];
  // A range this check cannot read is left to npm's engine check rather than guessed at.
  if (!minimum) return undefined;
  const have = parts(found);
  const want = parts(minimum);
  for (let index = 0; index < 3; index += 1) {
    const difference = (have[index] ?? 0) - (want[index] ?? 0);
    if (difference > 0) return undefined;
    if (difference < 0) return nodeVersionErrors.tooOld(found.replace(/^v/, ''), needed);
  }
  return undefined;
}
