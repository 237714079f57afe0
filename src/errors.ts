/**
 * Typed errors users can act on. Every failure an operator or plugin author can fix is an
 * {@link OutagelessError} with a stable `code`, the exit code the CLI uses for it, and a
 * message that names the file, component and step involved plus what to do next.
 *
 * Codes are part of the public contract (runbooks grep for them): never rename one.
 *
 * @example
 * ```ts
 * try {
 *   await upgrade(site)
 * } catch (error) {
 *   if (isOutagelessError(error, 'OUTAGELESS_ERR_UPGRADE_LOCKED')) retryLater()
 *   else throw error
 * }
 * ```
 */

import { nearestKey } from './did-you-mean.ts';

/**
 * What the loader (component/load.ts) found out about a file that failed to load, kept beside
 * the failure's cause: every place that re-throws `OUTAGELESS_ERR_LOAD_FAILED` with the cause
 * then keeps the fix that fits.
 */
const loadFailureFacts = new WeakMap<object, { readonly commonjsPackage: string }>();

/**
 * Records that `cause` (an import's error) happened under a package.json that says
 * `"type": "commonjs"`: Node ran the component file as CommonJS.
 *
 * @example
 * ```ts
 * noteCommonjsPackage(error, '/srv/site/package.json')
 * errors.loadFailed('core/version.ts', error).hint // 'Set "type": "module" in /srv/site/package.json…'
 * ```
 */
export function noteCommonjsPackage(cause: unknown, packageJson: string): void {
  if (typeof cause === 'object' && cause !== null) loadFailureFacts.set(cause, { commonjsPackage: packageJson });
}

/** The fix for a load failure, from what its cause says. */
function loadFailedHint(cause: unknown): string {
  const facts = typeof cause === 'object' && cause !== null ? loadFailureFacts.get(cause) : undefined;
  if (facts) {
    return `Set "type": "module" in ${facts.commonjsPackage}: it says "type": "commonjs", so Node runs the component files as CommonJS, where import and export are syntax errors.`;
  }
  const { code, message } = (cause ?? {}) as { code?: unknown; message?: unknown };
  if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && String(message).includes('".ts"')) {
    // Type stripping is on by default from Node 22.18 and 23.6; before that it takes a flag.
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    if (major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)) {
      return `This Node.js (${process.version}) runs with TypeScript type stripping turned off, so it cannot load .ts files: remove --no-experimental-strip-types from its command line or NODE_OPTIONS.`;
    }
    return `This Node.js (${process.version}) does not strip TypeScript types, so it cannot load .ts files: run outageless on Node.js 24 (or 22.18 or later), or start Node 22.12–22.17 with --experimental-strip-types.`;
  }
  return 'Fix the file so Node can import it: erasable TypeScript only, with .ts suffixes on relative imports.';
}

/** Exit codes shared by every command (Moodle's semantics for 0–3). */
export const ExitCode = {
  ok: 0,
  error: 1,
  /** `--is-pending`: pending; `--is-maintenance-required`: maintenance required. */
  pendingOrMaintenance: 2,
  /** `--is-maintenance-required`: pending and needs no maintenance. */
  pendingWithoutMaintenance: 3,
  /** Another upgrader holds the site's upgrade lock. */
  locked: 4,
  /** The embedded database is open in another process. */
  embeddedInUse: 5,
  /** `lint`, or a plan: a step file imports code other than `outageless`, `kysely`, Node built-ins and `db/` files. */
  lintFailed: 6,
  /** An online step could not get its lock within the lock-wait budget; nothing of it was left half-done. */
  lockWaitExceeded: 7,
  /** Bad command line (unknown flag, missing value). */
  usage: 64,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Where an error points, so messages and `--json` output can name it. */
export interface ErrorLocation {
  readonly file?: string;
  readonly component?: string;
  readonly step?: string;
  readonly field?: string;
}

export class OutagelessError extends Error {
  readonly code: string;
  readonly exitCode: ExitCodeValue;
  readonly location: ErrorLocation;
  readonly hint: string | undefined;

  constructor(
    code: string,
    message: string,
    options: { exitCode?: ExitCodeValue; location?: ErrorLocation; hint?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OutagelessError';
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.error;
    this.location = options.location ?? {};
    this.hint = options.hint;
  }

  /** The form the CLI prints: message, location lines, then the fix. */
  describe(): string {
    const lines = [`${this.code}: ${this.message}`];
    const { file, component, step, field } = this.location;
    if (component) lines.push(`  component: ${component}`);
    if (step) lines.push(`  step: ${step}`);
    if (file) lines.push(`  file: ${file}`);
    if (field) lines.push(`  field: ${field}`);
    if (this.hint) lines.push(`  fix: ${this.hint}`);
    return lines.join('\n');
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.location, hint: this.hint };
  }
}

/** The database name of a postgres:// URL (its path), for messages; undefined when it has none. */
function databaseName(url: string): string | undefined {
  try {
    const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
    return name === '' ? undefined : name;
  } catch {
    return undefined;
  }
}

/** True when `error` is an outageless error, optionally with the given code. */
export function isOutagelessError(error: unknown, code?: string): error is OutagelessError {
  return error instanceof OutagelessError && (code === undefined || error.code === code);
}

/** An error factory that carries its stable code. */
export type ErrorFactory<A extends unknown[]> = ((...args: A) => OutagelessError) & { readonly code: string };

/**
 * Builds an error factory with a stable code, in the way Fastify's `createError` does: the
 * factory carries its `code` so callers can compare without constructing an error. Each
 * folder that owns codes (caches, jobs) builds its factories with it.
 *
 * @example
 * ```ts
 * export const cacheErrors = {
 *   unknownCache: errorFactory('OUTAGELESS_ERR_UNKNOWN_CACHE', (component: string, name: string) => ({
 *     message: `${component} declares no cache "${name}"`,
 *     location: { component },
 *     hint: 'Declare it in db/caches.ts.',
 *   })),
 * }
 * isOutagelessError(error, cacheErrors.unknownCache.code)
 * ```
 */
export function errorFactory<A extends unknown[]>(
  code: string,
  build: (...args: A) => { message: string; location?: ErrorLocation; hint?: string; exitCode?: ExitCodeValue; cause?: unknown },
): ErrorFactory<A> {
  const make = (...args: A) => {
    const { message, ...options } = build(...args);
    return new OutagelessError(code, message, options);
  };
  return Object.assign(make, { code });
}

export const errors = {
  /** `hint` replaces the default fix; the version format is only mentioned for version fields. */
  manifestInvalid: errorFactory('OUTAGELESS_ERR_MANIFEST_INVALID', (file: string, field: string, problem: string, component?: string, hint?: string) => ({
    message: `${field}: ${problem}`,
    location: { file, field, ...(component ? { component } : {}) },
    hint: hint ?? (/(^|\.|\])(version|requires)$|^dependencies\b/.test(field)
      ? `Correct "${field}" in ${file}. Versions are integers in the form YYYYMMDDXX.`
      : `Correct "${field}" in ${file}.`),
  })),
  /** A file every component needs (its `version.ts`) does not exist. */
  fileMissing: errorFactory('OUTAGELESS_ERR_FILE_MISSING', (file: string, component: string, why: string) => ({
    message: `${file} is missing: ${why}`,
    location: { file, component },
    hint: `Create ${file} with export default defineVersion({ component: '${component}', version: YYYYMMDDXX }), or remove the directory.`,
  })),
  /** The file exists and loads, but exports no default (a named export instead, say). */
  noDefaultExport: errorFactory('OUTAGELESS_ERR_NO_DEFAULT_EXPORT', (file: string, component: string, expected: string, named: readonly string[]) => ({
    message: `${file} has no default export${named.length ? ` (it exports ${named.map((name) => `"${name}"`).join(', ')})` : ''}; it would be read as empty`,
    location: { file, component },
    hint: `Make ${expected} the default export of ${file} (export default ${expected}), or delete the file if the component has nothing to declare there.`,
  })),
  /** An import did not finish within the load time limit (a top-level await that never settles, an endless loop). */
  loadTimeout: errorFactory('OUTAGELESS_ERR_LOAD_TIMEOUT', (file: string, limitMs: number, component?: string) => ({
    message: `loading ${file} did not finish within ${limitMs / 1000}s; nothing was written`,
    location: { file, ...(component ? { component } : {}) },
    hint: 'Remove the endless loop or the top-level await that never settles from the file (or what it imports). OUTAGELESS_LOAD_TIMEOUT_MS sets the limit.',
  })),
  /** `metadata()` of a db/upgrade.ts returned something that is not `{ maintenance?, purgeCaches? }`. */
  metadataInvalid: errorFactory('OUTAGELESS_ERR_METADATA_INVALID', (file: string, component: string, field: string, problem: string, hint?: string) => ({
    message: `metadata() returned an invalid result: ${field === '(result)' ? '' : `${field}: `}${problem}`,
    location: { file, component, field },
    hint: hint ?? "Return { maintenance?: 'none' | 'component' | 'site', purgeCaches?: 'none' | 'own' | 'all' } from metadata().",
  })),
  metadataFailed: errorFactory('OUTAGELESS_ERR_METADATA_FAILED', (file: string, component: string, cause: unknown) => ({
    message: `metadata() threw: ${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}`,
    location: { file, component, field: 'metadata' },
    hint: `Fix metadata() in ${file}: it is called with the installed version while the plan is built, before anything is written.`,
    cause,
  })),
  metadataTimeout: errorFactory('OUTAGELESS_ERR_METADATA_TIMEOUT', (file: string, component: string, limitMs: number) => ({
    message: `metadata() did not return within ${limitMs / 1000}s; nothing was written`,
    location: { file, component, field: 'metadata' },
    hint: `Make metadata() in ${file} return promptly: it should only look at the installed version. OUTAGELESS_LOAD_TIMEOUT_MS sets the limit.`,
  })),
  /** A subplugin type's directory resolves outside its parent component's directory. */
  subpluginDir: errorFactory('OUTAGELESS_ERR_SUBPLUGIN_DIR', (file: string, component: string, type: string, dir: string) => ({
    message: `subplugin type "${type}" points at "${dir}", which is not inside ${component}'s directory`,
    location: { file, component, field: `subplugins.${type}` },
    hint: `Give subplugins.${type} a directory inside the component, such as '${type}' (no "..", no absolute path, no symlink out).`,
  })),
  /** Two components declare the same table in their db/schema.ts. */
  tableConflict: errorFactory('OUTAGELESS_ERR_TABLE_CONFLICT', (file: string, component: string, table: string, otherComponent: string, otherFile: string) => ({
    message: `table ${table} is declared by ${component} and also by ${otherComponent} (${otherFile})`,
    location: { file, component, field: `tables.${table}` },
    hint: `Each table belongs to one component: rename it in ${file} (prefix it with the component's name), or remove one of the two declarations.`,
  })),
  /** A foreign key names a table no component declares, or a column its table does not have. */
  foreignKeyTarget: errorFactory('OUTAGELESS_ERR_FOREIGN_KEY_TARGET', (file: string, component: string, field: string, problem: string) => ({
    message: `${component}: ${problem}`,
    location: { file, component, field },
    hint: `Point the foreign key in ${file} at a table and columns that a component of this site declares in its db/schema.ts.`,
  })),
  /** A column default that is not exactly one valid expression of the column's type. */
  defaultInvalid: errorFactory('OUTAGELESS_ERR_DEFAULT_INVALID', (file: string, component: string, table: string, column: string, problem: string, kind: 'sql' | 'literal' = 'sql') => ({
    message: `${component}: table ${table}: column ${column}: default ${problem}`,
    location: { file, component, field: `tables.${table}.columns.${column}.default` },
    hint: kind === 'sql'
      ? `Make default { sql } in ${file} one SQL expression of the column's type, such as { sql: 'now()' }: no semicolons, comments or unbalanced parentheses.`
      : `Give a literal of the column's type in ${file} (a whole number for integer and bigint), or change the column's type.`,
  })),
  componentNameMismatch: errorFactory('OUTAGELESS_ERR_COMPONENT_NAME', (file: string, declared: string, expected: string) => ({
    message: `version.ts declares component "${declared}" but its directory makes it "${expected}"`,
    location: { file, component: expected, field: 'component' },
    hint: `Set component: '${expected}' in ${file}, or move the directory so its path matches "${declared}".`,
  })),
  duplicateComponent: errorFactory('OUTAGELESS_ERR_DUPLICATE_COMPONENT', (component: string, first: string, second: string) => ({
    message: `component "${component}" is defined twice: ${first} and ${second}`,
    location: { component, file: second },
    hint: 'Remove one of the two directories; each component may exist once per site.',
  })),
  duplicateStep: errorFactory('OUTAGELESS_ERR_DUPLICATE_STEP', (file: string, component: string, what: 'version' | 'id', value: string) => ({
    message: `two upgrade steps share the ${what} ${value}`,
    location: { file, component, step: value, field: what },
    hint: what === 'id'
      ? 'Give every step of a component a distinct, stable id.'
      : 'Give each step its own version; bump the second one (YYYYMMDDXX, XX counts within a day).',
  })),
  stepAboveVersion: errorFactory('OUTAGELESS_ERR_STEP_ABOVE_VERSION', (file: string, component: string, step: string, stepVersion: number, version: number) => ({
    message: `step "${step}" has version ${stepVersion}, above the component's version ${version}`,
    location: { file, component, step, field: 'version' },
    hint: `Raise version in version.ts to at least ${stepVersion}, or lower the step's version.`,
  })),
  stepsOutOfOrder: errorFactory('OUTAGELESS_ERR_STEP_ORDER', (file: string, component: string, step: string, stepVersion: number, previous: number) => ({
    message: `step "${step}" (version ${stepVersion}) comes after a step with version ${previous}`,
    location: { file, component, step, field: 'steps' },
    hint: 'List steps in ascending version order, as they run.',
  })),
  requiresNewerCore: errorFactory('OUTAGELESS_ERR_REQUIRES_CORE', (file: string, component: string, requires: number, core: number) => ({
    message: `requires core ${requires}, but the core on disk is ${core}`,
    location: { file, component, field: 'requires' },
    hint: `Deploy a core at version ${requires} or later, or install a release of ${component} made for this core.`,
  })),
  dependencyMissing: errorFactory('OUTAGELESS_ERR_DEPENDENCY_MISSING', (file: string, component: string, dependency: string) => ({
    message: `depends on "${dependency}", which is not on disk`,
    location: { file, component, field: `dependencies.${dependency}` },
    hint: `Add ${dependency} to the site, or remove it from the dependencies of ${component}.`,
  })),
  dependencyTooOld: errorFactory('OUTAGELESS_ERR_DEPENDENCY_TOO_OLD', (file: string, component: string, dependency: string, needed: number, found: number) => ({
    message: `depends on "${dependency}" ${needed} or later, but ${found} is on disk`,
    location: { file, component, field: `dependencies.${dependency}` },
    hint: `Deploy ${dependency} at version ${needed} or later.`,
  })),
  dependencyCycle: errorFactory('OUTAGELESS_ERR_DEPENDENCY_CYCLE', (cycle: readonly string[], file: string) => ({
    message: `dependency cycle: ${cycle.join(' -> ')}`,
    location: { component: cycle[0], file, field: 'dependencies' },
    hint: 'Break the cycle: one of these components must not depend on the other.',
  })),
  unknownPluginType: errorFactory('OUTAGELESS_ERR_UNKNOWN_PLUGIN_TYPE', (dir: string, type: string, known: readonly string[]) => ({
    message: `unknown plugin type directory "${type}" (known: ${known.join(', ')})`,
    location: { file: dir },
    hint: `Move the plugins to a known type directory, or add "${type}" to pluginTypes in core/version.ts.`,
  })),
  loadFailed: errorFactory('OUTAGELESS_ERR_LOAD_FAILED', (file: string, cause: unknown, component?: string) => ({
    message: `could not load ${file}: ${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}`,
    location: { file, ...(component ? { component } : {}) },
    hint: loadFailedHint(cause),
    cause,
  })),
  downgrade: errorFactory('OUTAGELESS_ERR_DOWNGRADE', (component: string, installed: number, code: number, file: string) => ({
    message: `code version ${code} is older than the installed version ${installed}; nothing was changed`,
    location: { component, file, field: 'version' },
    hint: `Deploy code of ${component} at version ${installed} or later. Versions only move forward.`,
  })),
  notInstalled: errorFactory('OUTAGELESS_ERR_NOT_INSTALLED', (database: string) => ({
    message: `the site in ${database} is not installed`,
    hint: 'Run `outageless upgrade --non-interactive` to install it.',
  })),
  upgradeLocked: errorFactory('OUTAGELESS_ERR_UPGRADE_LOCKED', (holder: { host: string; pid: number; since: Date } | undefined) => ({
    message: holder
      ? `another upgrade is running (host ${holder.host}, pid ${holder.pid}, since ${holder.since.toISOString()})`
      : 'another upgrade is running',
    exitCode: ExitCode.locked,
    hint: 'Wait for it to finish, or pass --wait <seconds> to queue behind it.',
  })),
  /**
   * A component name (`--component`, `runPending(name)`, a pause from the admin page) that is
   * not on disk. One code for the mistake wherever it is made; `root`, when the name came
   * from a command line, says which site was searched.
   */
  unknownComponent: errorFactory('OUTAGELESS_ERR_UNKNOWN_COMPONENT', (name: string, known: readonly string[], root?: string) => {
    const nearest = nearestKey(name, known);
    return {
      message: `no component "${name}" on disk${root ? ` under ${root}` : ''}`,
      location: { component: name },
      hint: `${nearest ? `Did you mean \`${nearest}\`? ` : ''}Components of this site: ${known.join(', ')}.${root ? ` Or point --root at the site that has ${name}.` : ''}`,
    };
  }),
  /**
   * `parent`: the component a subplugin pauses with; the fix is then to pause that one, since
   * `disableable` is not the subplugin's to declare. core's fix is whole-site maintenance.
   */
  notDisableable: errorFactory('OUTAGELESS_ERR_NOT_DISABLEABLE', (component: string, file: string, why: string, parent?: { readonly name: string; readonly versionFile: string; readonly disableable: boolean }) => ({
    message: `${component} cannot be paused on its own: ${why}`,
    location: { component, file, ...(parent || component === 'core' ? {} : { field: 'maintenance.disableable' }) },
    hint: parent
      ? parent.disableable
        ? `Pause its parent instead: \`outageless maintenance enable --component ${parent.name}\` pauses ${parent.name} and its subplugins, ${component} among them.`
        : `Pause its parent instead, which pauses ${component} with it: declare maintenance: { disableable: true } in ${parent.versionFile}, then run \`outageless maintenance enable --component ${parent.name}\`; or use whole-site maintenance.`
      : component === 'core'
        ? 'Put the whole site into maintenance instead: `outageless maintenance enable`.'
        : 'Declare maintenance: { disableable: true } in its version.ts once its callbacks into other pages may be skipped, or use whole-site maintenance.',
  })),
  /** A pause or resume of a component that a running (staged) upgrade has paused for its steps. */
  componentHeldByRun: errorFactory('OUTAGELESS_ERR_COMPONENT_HELD_BY_UPGRADE', (component: string, runId: string) => ({
    message: `${component} is paused by upgrade run ${runId}, which is still running; nothing was changed`,
    location: { component },
    hint: `Wait for the upgrade to finish (it returns ${component} to normal itself; \`outageless status\` shows the run), then retry.`,
  })),
  upgradeLockLost: errorFactory('OUTAGELESS_ERR_UPGRADE_LOCK_LOST', () => ({
    message: 'the upgrade lock was lost (its database session ended); the current step was rolled back so two upgraders never apply it',
    exitCode: ExitCode.locked,
    hint: 'Check the database connection, then rerun `outageless upgrade`: it resumes at this step.',
  })),
  embeddedInUse: errorFactory('OUTAGELESS_ERR_EMBEDDED_IN_USE', (dir: string, pid: number, host: string) => ({
    message: `the embedded database ${dir} is open in another process (pid ${pid} on ${host})`,
    location: { file: dir },
    exitCode: ExitCode.embeddedInUse,
    hint: 'An embedded (PGlite) site serves one process. Stop the other process, or use PostgreSQL (--database postgres://…) for multi-process sites.',
  })),
  embeddedPath: errorFactory('OUTAGELESS_ERR_EMBEDDED_PATH', (dir: string, problem: string) => ({
    message: `the embedded database cannot be opened at ${dir}: ${problem}`,
    location: { file: dir },
    hint: 'pglite://<dir> names a directory for the embedded database, created when missing. Point --database (or $OUTAGELESS_DATABASE_URL) at a directory, or move the file that is in the way.',
  })),
  /** `serve` started the front but could not listen (the port is taken, the address is not this host's). */
  listenFailed: errorFactory('OUTAGELESS_ERR_LISTEN_FAILED', (host: string, port: number, cause: unknown) => {
    const code = (cause as { code?: unknown } | null)?.code;
    return {
      message: `cannot listen on ${host}:${port}: ${cause instanceof Error ? cause.message : String(cause)}; the front left the registry`,
      hint: code === 'EADDRINUSE'
        ? `Another process listens on port ${port}: stop it, or pass another --port.`
        : code === 'EADDRNOTAVAIL'
          ? `${host} is not an address of this machine: pass --host 127.0.0.1, 0.0.0.0 or one of its addresses.`
          : 'Pass a --host and --port this process may listen on.',
      cause,
    };
  }),
  databaseUrl: errorFactory('OUTAGELESS_ERR_DATABASE_URL', (url: string) => ({
    message: `unsupported database URL "${url}"`,
    hint: 'Use postgres://user@host:port/db, postgresql://…, pglite://<dir> or pglite://memory.',
  })),
  connectionLost: errorFactory('OUTAGELESS_ERR_CONNECTION_LOST', (cause: unknown) => ({
    message: `the connection to the database was lost: ${cause instanceof Error ? cause.message : String(cause)}`,
    hint: 'Check the database server and the network, then rerun the command: an upgrade resumes at the step it was on, and what committed stays committed.',
    cause,
  })),
  /** `url` is the redacted URL. A server that answers "database does not exist" (3D000) gets a fix that creates it. */
  databaseUnreachable: errorFactory('OUTAGELESS_ERR_DATABASE_UNREACHABLE', (url: string, cause: unknown) => {
    const missing = (cause as { code?: unknown } | null)?.code === '3D000' ? databaseName(url) : undefined;
    const shell = missing !== undefined && /^[A-Za-z0-9_.-]+$/.test(missing) ? missing : `'${missing?.replace(/'/g, `'\\''`)}'`;
    return {
      message: `cannot connect to ${url}: ${cause instanceof Error ? cause.message : String(cause)}`,
      hint: missing === undefined
        ? 'Check that the server runs and the URL (host, port, user, database) is right.'
        : `The server runs, but has no database "${missing}": create it with \`createdb ${shell}\` (or CREATE DATABASE "${missing.replace(/"/g, '""')}"; in psql), or correct the database name in the URL.`,
      cause,
    };
  }),
  /**
   * A step threw. `rolledBack` is false for a step that ran outside one transaction
   * (`transaction: false`, or an online step whose helper calls commit one by one): whatever it
   * changed before the error stays, and the rerun starts the step over on top of it.
   */
  stepFailed: errorFactory('OUTAGELESS_ERR_STEP_FAILED', (component: string, step: string, version: number, file: string, cause: unknown, rolledBack = true) => ({
    message: rolledBack
      ? `step "${step}" (version ${version}) failed and was rolled back: ${cause instanceof Error ? cause.message : String(cause)}`
      : `step "${step}" (version ${version}) failed; it runs outside a single transaction, so what it changed before the error was not rolled back and stays in the database: ${cause instanceof Error ? cause.message : String(cause)}`,
    location: { component, step, file },
    hint: rolledBack
      ? 'Fix the step or the data it trips on, then rerun `outageless upgrade`: it resumes at this step.'
      : 'Fix the step or the data it trips on, then rerun `outageless upgrade`: the step reruns from the start over its own partial work, so it must be idempotent (guard each change, as the ctx.schema helpers do).',
    cause,
  })),
  installFailed: errorFactory('OUTAGELESS_ERR_INSTALL_FAILED', (component: string, file: string, cause: unknown) => ({
    message: `install of ${component} failed and was rolled back: ${cause instanceof Error ? cause.message : String(cause)}`,
    location: { component, file },
    hint: 'Fix the schema or install file, then rerun `outageless upgrade`; components already installed stay installed.',
    cause,
  })),
  maintenanceRequired: errorFactory('OUTAGELESS_ERR_MAINTENANCE_REQUIRED', (reasons: readonly string[]) => ({
    message: `This upgrade WILL result in maintenance mode:\n${reasons.map((r) => `  - ${r}`).join('\n')}`,
    exitCode: ExitCode.pendingOrMaintenance,
    hint: 'Run without --no-maintenance during a maintenance window.',
  })),
  unstable: errorFactory('OUTAGELESS_ERR_UNSTABLE', (components: readonly { component: string; maturity: string }[]) => ({
    message: `components below stable maturity: ${components.map((c) => `${c.component} (${c.maturity})`).join(', ')}`,
    location: { component: components[0]?.component },
    hint: 'Pass --allow-unstable to install or upgrade them anyway.',
  })),
  /** `what`: the command that was cancelled (`upgrade`, `uninstall of block_news`). */
  notConfirmed: errorFactory('OUTAGELESS_ERR_NOT_CONFIRMED', (what = 'upgrade') => ({
    message: `${what} cancelled: not confirmed; nothing was changed`,
    hint: 'Answer "y" at the prompt, or pass --non-interactive.',
  })),
  preStepNotNone: errorFactory('OUTAGELESS_ERR_PRE_STEP_NOT_NONE', (file: string, component: string, step: string, outage: string | undefined) => ({
    message: `pre step "${step}" ${outage ? `declares outage '${outage}'` : 'declares no outage (assumed site)'}, but a pre step runs while every front still runs the old code`,
    location: { file, component, step, field: 'outage' },
    hint: "Declare outage: 'none' and keep the step additive (expand), or make it a main step (phase: 'main').",
  })),
  unknownPrerequisite: errorFactory('OUTAGELESS_ERR_UNKNOWN_PREREQUISITE', (file: string, component: string, step: string, prerequisite: string, why: string) => ({
    message: `step "${step}" is gated on ${prerequisite} (after:), but ${why}`,
    location: { file, component, step, field: 'after' },
    hint: 'Name a background migration or step as "<component>/<id>", with the id it has in that component\'s db/upgrade.ts.',
  })),
  unfinishedPrerequisite: errorFactory(
    'OUTAGELESS_ERR_UNFINISHED_PREREQUISITE',
    (gates: readonly { component: string; step: string; prerequisite: string; progress: string; command: string }[]) => ({
      message: `the plan is gated on work that is not finished:\n${gates.map((g) => `  - ${g.component}/${g.step} needs ${g.prerequisite}: ${g.progress}`).join('\n')}`,
      location: { component: gates[0]?.component, step: gates[0]?.step },
      hint: `Finish it first, then rerun the upgrade:\n${[...new Set(gates.map((g) => `  ${g.command}`))].join('\n')}`,
    }),
  ),
  preStepUnsafe: errorFactory('OUTAGELESS_ERR_PRE_STEP_UNSAFE', (component: string, step: string, reasons: readonly string[]) => ({
    message: `pre step "${step}" cannot run while the old code serves: ${reasons.join('; ')}`,
    location: { component, step },
    hint: 'Take the safe alternative above, or move the change into a main or post step.',
  })),
  /** `outageless uninstall <name>` for a component the database does not have. */
  componentNotInstalled: errorFactory('OUTAGELESS_ERR_COMPONENT_NOT_INSTALLED', (component: string, installed: readonly string[], nearest: string | undefined) => ({
    message: `no component "${component}" is installed`,
    location: { component },
    hint: `${nearest ? `Did you mean \`${nearest}\`? ` : ''}Installed components: ${installed.length > 0 ? installed.join(', ') : '(none)'}.`,
  })),
  /** core cannot be uninstalled: the site is core plus plugins. */
  uninstallCore: errorFactory('OUTAGELESS_ERR_UNINSTALL_CORE', () => ({
    message: 'core cannot be uninstalled: every plugin runs on it',
    location: { component: 'core' },
    hint: 'Uninstall plugins one by one, or drop the whole site database to remove the site.',
  })),
  /** The component's code is still on disk: the next upgrade would install it again. */
  uninstallCodeOnDisk: errorFactory('OUTAGELESS_ERR_UNINSTALL_CODE_ON_DISK', (component: string, dir: string) => ({
    message: `the code of ${component} is still on disk (${dir}); nothing was changed`,
    location: { component, file: dir },
    hint: `Remove ${dir} from every front's code first (and restart the fronts), then rerun \`outageless uninstall ${component}\`.`,
  })),
  /** An installed component whose code is on disk declares a dependency on one being uninstalled. */
  uninstallDependedOn: errorFactory('OUTAGELESS_ERR_UNINSTALL_DEPENDED_ON', (component: string, dependents: readonly { component: string; file: string }[]) => ({
    message: `${component} is a dependency of ${dependents.map((d) => `${d.component} (${d.file})`).join(', ')}; nothing was changed`,
    location: { component, file: dependents[0]?.file },
    hint: `Uninstall ${dependents.map((d) => d.component).join(', ')} first, or remove ${component} from the dependencies in ${dependents.map((d) => d.file).join(', ')}.`,
  })),
  /** A foreign key of a table that stays points into a table the uninstall would drop. */
  uninstallForeignKey: errorFactory('OUTAGELESS_ERR_UNINSTALL_FOREIGN_KEY', (component: string, references: readonly { constraint: string; table: string; owner: string | undefined; references: string }[]) => ({
    message: `tables that stay reference tables of ${component}: ${references.map((r) => `${r.table}.${r.constraint} -> ${r.references}${r.owner ? ` (declared by ${r.owner})` : ''}`).join(', ')}; nothing was changed`,
    location: { component, field: references[0] ? `tables.${references[0].references}` : undefined },
    hint: `Drop those foreign keys first (an upgrade step of ${[...new Set(references.map((r) => r.owner ?? r.table))].join(', ')}), or uninstall the components that own them.`,
  })),
  /** A live front still runs the component's code (it started before the code was removed). */
  uninstallFrontRunsIt: errorFactory('OUTAGELESS_ERR_UNINSTALL_FRONT_RUNS_IT', (component: string, fronts: readonly { host: string; pid: number; url: string | null }[]) => ({
    message: `${fronts.length} live front(s) still run the code of ${component}: ${fronts.map((f) => `${f.host} pid ${f.pid}${f.url ? ` ${f.url}` : ''}`).join(', ')}; dropping its tables would break their requests; nothing was changed`,
    location: { component },
    hint: `Restart those fronts on the code without ${component} (\`outageless status\` lists the fronts), then rerun \`outageless uninstall ${component}\`.`,
  })),
  /** The uninstall's transaction failed (a view or another object depends on a dropped table): all of it rolled back. */
  uninstallFailed: errorFactory('OUTAGELESS_ERR_UNINSTALL_FAILED', (component: string, cause: unknown) => ({
    // PostgreSQL names the dependent object in the error's detail, not its message.
    message: `uninstall of ${component} failed and was rolled back, nothing was dropped: ${cause instanceof Error ? cause.message : String(cause)}${typeof (cause as { detail?: unknown } | null)?.detail === 'string' ? ` (${(cause as { detail: string }).detail.replaceAll('\n', '; ')})` : ''}`,
    location: { component },
    hint: `Remove what the database names as depending on ${component}'s tables (a view, a trigger, a foreign key added by hand), then rerun \`outageless uninstall ${component}\`.`,
    cause,
  })),
  /** The component was installed by an outageless that did not record its tables. */
  uninstallTablesUnrecorded: errorFactory('OUTAGELESS_ERR_UNINSTALL_TABLES_UNRECORDED', (component: string, version: number) => ({
    message: `${component} was installed by an older outageless, which did not record its tables: which to drop is unknown; nothing was changed`,
    location: { component },
    hint: `Put the code of ${component} at version ${version} back on disk and run \`outageless upgrade\` once (it records the tables of every installed component whose code is on disk), then remove the code and rerun \`outageless uninstall ${component}\`.`,
  })),
  usage: errorFactory('OUTAGELESS_ERR_USAGE', (problem: string) => ({ message: problem, exitCode: ExitCode.usage })),
} as const;
