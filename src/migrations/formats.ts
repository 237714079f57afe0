import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import type { Component, SiteCode } from '../component/discover.ts';
import type { BackgroundStep } from '../component/definitions.ts';
import type { FormatDefinition, FormatsDefinition } from '../component/formats.ts';
import { loadSchema } from '../component/files.ts';
import { importDefinitionFile } from '../component/load.ts';
import { errorFactory, errors, isOutagelessError } from '../errors.ts';
import type { Plan } from '../plan/plan.ts';
import { listFronts, type FrontRecord } from '../runtime/front-registry.ts';
import { readInstalled } from '../state/installed.ts';
import { tableExists } from '../state/tables.ts';

/**
 * Data formats at run time (DESIGN §4.6, issue 9): loading and validating `db/formats.ts`,
 * coverage (rows by version), the read gate of a release, the installed versions the plan
 * compares with, and the backfill as a background migration named `format:<name>:v<write>`.
 */

/** A format of the code, validated, with its component. */
export interface LoadedFormat extends FormatDefinition {
  readonly component: string;
  readonly name: string;
  readonly key: string;
}

export const formatErrors = {
  /** `db/formats.ts` names a table its component's `db/schema.ts` does not declare. */
  unknownTable: errorFactory('OUTAGELESS_ERR_FORMAT_UNKNOWN_TABLE', (file: string, component: string, format: string, table: string, known: readonly string[]) => ({
    message: `format ${component}/${format}: table "${table}" is not declared in ${component}'s db/schema.ts${known.length > 0 ? ` (it declares: ${known.join(', ')})` : ''}`,
    location: { file, component, field: `${format}.table` },
    hint: `Name one of ${component}'s own tables in ${file}, or declare "${table}" in its db/schema.ts.`,
  })),
  /** The version or key column is not a column of the table. */
  unknownColumn: errorFactory('OUTAGELESS_ERR_FORMAT_UNKNOWN_COLUMN', (file: string, component: string, format: string, field: string, table: string, column: string, known: readonly string[]) => ({
    message: `format ${component}/${format}: ${field} "${column}" is not a column of ${table} (columns: ${known.join(', ')})`,
    location: { file, component, field: `${format}.${field}` },
    hint: `Correct ${format}.${field} in ${file}, or add the column "${column}" to ${table} in db/schema.ts (with a step that adds it).`,
  })),
  /** `read` above `write`: the code could not read what it writes. */
  readAboveWrite: errorFactory('OUTAGELESS_ERR_FORMAT_READ_ABOVE_WRITE', (file: string, component: string, format: string, read: number, write: number) => ({
    message: `format ${component}/${format}: read ${read} is above write ${write}: the code could not read the rows it writes`,
    location: { file, component, field: `${format}.read` },
    hint: `Raise write first (phase 1), backfill with \`outageless data backfill ${component}/${format}\`, then raise read (phase 2), in ${file}.`,
  })),
  /** A release lowers `read` or `write` below what is installed. */
  downgrade: errorFactory('OUTAGELESS_ERR_FORMAT_DOWNGRADE', (file: string, component: string, format: string, field: 'read' | 'write', installed: number, code: number) => ({
    message: `format ${component}/${format}: ${field} ${code} is below the installed ${field} ${installed}: format versions never go down`,
    location: { file, component, field: `${format}.${field}` },
    hint: `Keep ${format}.${field} at ${installed} or above in ${file}; to change the format again, raise write to a new version.`,
  })),
  /** A release raises `read` while rows or live fronts are still below it. */
  readGate: errorFactory('OUTAGELESS_ERR_FORMAT_READ_GATE', (refusals: readonly ReadGateRefusal[]) => ({
    message: `the release raises a format's read version while data or fronts are below it:\n${refusals.map((r) => `  ${r.component}/${r.format}: read ${r.from} -> ${r.to}: ${r.coverage.percentAtOrAbove.toFixed(1)}% of ${r.coverage.total} rows at or above ${r.to} (${r.coverage.below} below)${r.fronts.length > 0 ? `; live fronts writing below ${r.to}: ${r.fronts.map((f) => `${f.host}:${f.pid} (writes ${f.write})`).join(', ')}` : ''}`).join('\n')}`,
    location: { component: refusals[0]?.component, field: refusals[0]?.format },
    hint: `Run \`outageless data backfill ${refusals[0]?.component}/${refusals[0]?.format}\` (then \`outageless background finish\`), roll every front to the release that writes the new version, and check with \`outageless data coverage\`. Nothing was changed.`,
  })),
  /** `data backfill` of a format the code does not declare, or one without a backfill. */
  unknownFormat: errorFactory('OUTAGELESS_ERR_FORMAT_UNKNOWN', (component: string, format: string, known: readonly string[]) => ({
    message: `${component} declares no data format "${format}"${known.length > 0 ? ` (it declares: ${known.join(', ')})` : ''}`,
    location: { component, field: format },
    hint: `Name a format of ${component}'s db/formats.ts (\`outageless data coverage\` lists them).`,
  })),
  noBackfill: errorFactory('OUTAGELESS_ERR_FORMAT_NO_BACKFILL', (file: string, component: string, format: string) => ({
    message: `format ${component}/${format} has no backfill function`,
    location: { file, component, field: `${format}.backfill` },
    hint: `Add backfill({ db, from, to, write }) to ${format} in ${file}: it re-writes rows of keys from..to below write and returns how many it changed.`,
  })),
} as const;

/** One refusal of the read gate. */
export interface ReadGateRefusal {
  readonly component: string;
  readonly format: string;
  readonly from: number;
  readonly to: number;
  readonly coverage: { readonly total: number; readonly below: number; readonly percentAtOrAbove: number };
  readonly fronts: readonly { readonly id: string; readonly host: string; readonly pid: number; readonly write: number }[];
}

const version = z.number({ error: 'must be a positive integer' }).int('must be a positive integer').positive('must be a positive integer');
const identifier = z.string({ error: 'must be a table or column name' }).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a table or column name');
const formatSchema = z.strictObject({
  table: identifier,
  versionColumn: identifier,
  read: version,
  write: version,
  key: identifier.optional(),
  backfill: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function', 'must be a function').optional(),
  targetBatchMs: z.number().int().positive().optional(),
  batchSize: z.strictObject({ min: z.number().int().positive().optional(), initial: z.number().int().positive().optional(), max: z.number().int().positive().optional() }).optional(),
});
const formatsSchema = z.strictObject({ kind: z.literal('formats'), formats: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'format names are lower-case identifiers'), formatSchema) });

/**
 * Validates a `db/formats.ts` default export against the component's schema: strict keys,
 * `read <= write`, and a table and columns the component declares.
 *
 * @example
 * ```ts
 * const formats = validateFormats('plugins/mod/assign/db/formats.ts', 'mod_assign', value, schema)
 * ```
 */
export function validateFormats(file: string, component: string, value: unknown, schema: { readonly tables: Readonly<Record<string, { readonly columns: Readonly<Record<string, unknown>> }>> }): LoadedFormat[] {
  const parsed = formatsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.') || '(default export)';
    throw errors.manifestInvalid(file, field, issue.message, component, `Correct "${field}" in ${file}: export default defineFormats({ <name>: { table, versionColumn, read, write, backfill? } }).`);
  }
  const definition = value as FormatsDefinition;
  const loaded: LoadedFormat[] = [];
  for (const [name, format] of Object.entries(definition.formats)) {
    const table = schema.tables[format.table];
    if (!table) throw formatErrors.unknownTable(file, component, name, format.table, Object.keys(schema.tables));
    const columns = Object.keys(table.columns);
    const key = format.key ?? 'id';
    if (!columns.includes(format.versionColumn)) throw formatErrors.unknownColumn(file, component, name, 'versionColumn', format.table, format.versionColumn, columns);
    if (!columns.includes(key)) throw formatErrors.unknownColumn(file, component, name, 'key', format.table, key, columns);
    if (format.read > format.write) throw formatErrors.readAboveWrite(file, component, name, format.read, format.write);
    loaded.push({ ...format, component, name, key });
  }
  return loaded;
}

/** Where a component's formats file is, as messages show it. */
export function formatsFile(component: Component): string {
  return join(component.versionFile, '..', 'db', 'formats.ts');
}

const cache = new WeakMap<Component, Promise<LoadedFormat[]>>();

/**
 * The validated formats of `component`'s code (empty without `db/formats.ts`), loaded once.
 *
 * @example
 * ```ts
 * for (const format of await loadFormats(code, code.components.get('mod_assign')!)) console.log(format.name, format.write)
 * ```
 */
export function loadFormats(code: SiteCode, component: Component): Promise<LoadedFormat[]> {
  let entry = cache.get(component);
  if (!entry) {
    entry = (async () => {
      const file = formatsFile(component);
      let found;
      try {
        found = await importDefinitionFile(join(component.dir, 'db', 'formats.ts'), component.name);
      } catch (error) {
        if (isOutagelessError(error, errors.loadFailed.code)) throw errors.loadFailed(file, error.cause, component.name);
        throw error;
      }
      if (found.kind === 'missing') return [];
      if (found.kind === 'no-default') throw errors.noDefaultExport(file, component.name, 'defineFormats({...})', found.named);
      return validateFormats(file, component.name, found.value, await loadSchema(code, component));
    })();
    cache.set(component, entry);
  }
  return entry;
}

/** Every format of the site's code, in component order. */
export async function loadSiteFormats(code: SiteCode): Promise<LoadedFormat[]> {
  const all: LoadedFormat[] = [];
  for (const component of code.components.values()) all.push(...(await loadFormats(code, component)));
  return all;
}

/** `{ <component>: { <format>: { read, write } } }`: what a front or an install records. */
export type FormatVersions = Record<string, Record<string, { readonly read: number; readonly write: number }>>;

export function formatVersions(formats: readonly LoadedFormat[]): FormatVersions {
  const versions: FormatVersions = {};
  for (const format of formats) (versions[format.component] ??= {})[format.name] = { read: format.read, write: format.write };
  return versions;
}

/**
 * Records the installed read/write versions of `component`'s formats (what the next plan
 * compares the code with). Called in the transaction that records the component's version.
 *
 * @example
 * ```ts
 * await recordInstalledFormats(trx, code, component)
 * ```
 */
export async function recordInstalledFormats(trx: Kysely<any>, code: SiteCode, component: Component): Promise<void> {
  const formats = await loadFormats(code, component);
  await sql`delete from outageless_format where component = ${component.name}`.execute(trx);
  for (const format of formats) {
    await sql`insert into outageless_format (component, format, read_version, write_version) values (${component.name}, ${format.name}, ${format.read}, ${format.write})`.execute(trx);
  }
}

/** The installed versions, `<component>/<format>` → { read, write }. */
export async function readInstalledFormats(db: Kysely<any>): Promise<Map<string, { read: number; write: number }>> {
  if (!(await tableExists(db, 'outageless_format'))) return new Map();
  const { rows } = await sql<{ component: string; format: string; read_version: number; write_version: number }>`select * from outageless_format`.execute(db);
  return new Map(rows.map((row) => [`${row.component}/${row.format}`, { read: Number(row.read_version), write: Number(row.write_version) }]));
}

/** Rows of a format's table by version; `version` null for rows without one. */
export interface FormatCoverage {
  readonly component: string;
  readonly format: string;
  readonly table: string;
  readonly versionColumn: string;
  readonly read: number;
  readonly write: number;
  readonly total: number;
  readonly byVersion: readonly { readonly version: number | null; readonly rows: number }[];
  /** Rows at or above the code's write version, and their share (100 for an empty table). */
  readonly atOrAboveWrite: number;
  readonly percentAtOrAboveWrite: number;
  /** Live fronts and the version each writes (absent: the front predates the format). */
  readonly fronts: readonly { readonly id: string; readonly host: string; readonly pid: number; readonly write: number | null; readonly read: number | null }[];
}

/** Counts of `format`'s rows at or above `threshold`. */
async function countRows(db: Kysely<any>, format: LoadedFormat): Promise<{ version: number | null; rows: number }[]> {
  if (!(await tableExists(db, format.table))) return [];
  const { rows } = await sql<{ version: number | string | null; rows: number | string }>`
    select ${sql.ref(format.versionColumn)} as version, count(*) as rows from ${sql.table(format.table)} group by 1 order by 1 nulls first`.execute(db);
  return rows.map((row) => ({ version: row.version === null ? null : Number(row.version), rows: Number(row.rows) }));
}

function frontFormat(front: FrontRecord, component: string, format: string): { read: number; write: number } | undefined {
  return (front.components[component] as { formats?: Record<string, { read: number; write: number }> } | undefined)?.formats?.[format];
}

/**
 * Coverage of every format of the code: rows by version, the share at or above the write
 * version, and the version each live front writes.
 *
 * @example
 * ```ts
 * for (const c of await formatCoverage(db, code)) console.log(c.component, c.format, c.percentAtOrAboveWrite)
 * ```
 */
export async function formatCoverage(db: Kysely<any>, code: SiteCode, options: { staleAfterMs?: number } = {}): Promise<FormatCoverage[]> {
  const formats = await loadSiteFormats(code);
  const fronts = await listFronts(db, await readInstalled(db), options);
  const result: FormatCoverage[] = [];
  for (const format of formats) {
    const byVersion = await countRows(db, format);
    const total = byVersion.reduce((sum, entry) => sum + entry.rows, 0);
    const atOrAboveWrite = byVersion.reduce((sum, entry) => sum + (entry.version !== null && entry.version >= format.write ? entry.rows : 0), 0);
    result.push({
      component: format.component, format: format.name, table: format.table, versionColumn: format.versionColumn, read: format.read, write: format.write,
      total, byVersion, atOrAboveWrite, percentAtOrAboveWrite: total === 0 ? 100 : (100 * atOrAboveWrite) / total,
      fronts: fronts.map((front) => {
        const versions = frontFormat(front, format.component, format.name);
        return { id: front.id, host: front.host, pid: front.pid, write: versions?.write ?? null, read: versions?.read ?? null };
      }),
    });
  }
  return result;
}

/**
 * The format rules of a release, checked before anything runs: no format version goes
 * down (OUTAGELESS_ERR_FORMAT_DOWNGRADE), and a raised `read` needs every row and every live
 * front at or above it (OUTAGELESS_ERR_FORMAT_READ_GATE, with the coverage and the fronts).
 * A front that records no version for the format runs code from before the format: it
 * writes the lowest version there is, so it holds the gate too.
 *
 * @example
 * ```ts
 * await assertFormatRules(db, code, plan)
 * ```
 */
export async function assertFormatRules(db: Kysely<any>, code: SiteCode, plan: Plan, options: { staleAfterMs?: number } = {}): Promise<void> {
  const installed = await readInstalledFormats(db);
  const refusals: ReadGateRefusal[] = [];
  let fronts: FrontRecord[] | undefined;
  for (const item of plan.pending) {
    if (!item.code) continue;
    const formats = await loadFormats(code, item.code);
    for (const format of formats) {
      const before = installed.get(`${format.component}/${format.name}`);
      if (!before) continue; // A new format: nothing was read or written in it before.
      const file = formatsFile(item.code);
      if (format.write < before.write) throw formatErrors.downgrade(file, format.component, format.name, 'write', before.write, format.write);
      if (format.read < before.read) throw formatErrors.downgrade(file, format.component, format.name, 'read', before.read, format.read);
      if (format.read === before.read) continue;
      const counts = await countRows(db, format);
      const total = counts.reduce((sum, entry) => sum + entry.rows, 0);
      const below = counts.reduce((sum, entry) => sum + (entry.version === null || entry.version < format.read ? entry.rows : 0), 0);
      fronts ??= await listFronts(db, await readInstalled(db), options);
      const holders = fronts.flatMap((front) => {
        const write = frontFormat(front, format.component, format.name)?.write ?? 0;
        return write < format.read ? [{ id: front.id, host: front.host, pid: front.pid, write }] : [];
      });
      if (below > 0 || holders.length > 0) {
        refusals.push({ component: format.component, format: format.name, from: before.read, to: format.read, coverage: { total, below, percentAtOrAbove: total === 0 ? 100 : (100 * (total - below)) / total }, fronts: holders });
      }
    }
  }
  if (refusals.length > 0) throw formatErrors.readGate(refusals);
}

/** The background migration id of a format's backfill to `write`. */
export function backfillId(format: string, write: number): string {
  return `format:${format}:v${write}`;
}

/**
 * The synthetic background step of a format's backfill: the engine works it like a step of
 * `db/upgrade.ts` (batches, pause, resume, SIGKILL-safe cursor). Resolved from `format:<name>:v<write>`.
 *
 * @example
 * ```ts
 * const step = await formatBackfillStep(code, 'mod_assign', 'format:submission:v2')
 * ```
 */
export async function formatBackfillStep(code: SiteCode, componentName: string, id: string): Promise<BackgroundStep | undefined> {
  const match = /^format:([a-z][a-z0-9_]*):v(\d+)$/.exec(id);
  const component = code.components.get(componentName);
  if (!match || !component) return undefined;
  const format = (await loadFormats(code, component)).find((candidate) => candidate.name === match[1]);
  if (!format || !format.backfill || String(format.write) !== match[2]) return undefined;
  return backfillStepOf(component, format);
}

export function backfillStepOf(component: Component, format: LoadedFormat): BackgroundStep {
  const backfill = format.backfill!;
  return {
    phase: 'background',
    version: component.manifest.version,
    id: backfillId(format.name, format.write),
    description: `Re-write ${format.table} rows below ${format.versionColumn} ${format.write} (format ${format.name})`,
    table: format.table,
    key: format.key,
    batch: ({ db, from, to }) => backfill({ db, from, to, write: format.write, versionColumn: format.versionColumn }),
    ...(format.targetBatchMs === undefined ? {} : { targetBatchMs: format.targetBatchMs }),
    ...(format.batchSize === undefined ? {} : { batchSize: format.batchSize }),
  };
}

/**
 * Finds a format of the code by `<component>/<format>` for `data backfill`.
 *
 * @example
 * ```ts
 * const { component, format } = await findFormat(code, 'mod_assign', 'submission')
 * ```
 */
export async function findFormat(code: SiteCode, componentName: string, name: string): Promise<{ component: Component; format: LoadedFormat }> {
  const component = code.components.get(componentName);
  if (!component) throw formatErrors.unknownFormat(componentName, name, []);
  const formats = await loadFormats(code, component);
  const format = formats.find((candidate) => candidate.name === name);
  if (!format) throw formatErrors.unknownFormat(componentName, name, formats.map((candidate) => candidate.name));
  if (!format.backfill) throw formatErrors.noBackfill(formatsFile(component), componentName, name);
  return { component, format };
}

/** One format as component code uses it: what to stamp, and whether a row can be read. */
export interface FormatHandle {
  readonly component: string;
  readonly format: string;
  /** Stamp this in the version column of every row the code writes. */
  readonly write: number;
  /** The lowest version this code reads. */
  readonly read: number;
  readonly versionColumn: string;
  /**
   * True when `row`'s version is at least `read`. A row that cannot be read is recomputed by
   * the component, or answered "try again later": the component's choice.
   */
  canRead(row: Readonly<Record<string, unknown>>): boolean;
}

/**
 * `app.outagelessFormats`: the formats of this front's own code (each front stamps what its
 * code writes, whatever the database's installed versions are during a rollout).
 */
export interface OutagelessFormats {
  /**
   * The handle of `component`'s format `name`; throws OUTAGELESS_ERR_FORMAT_UNKNOWN when the
   * front's code declares no such format.
   *
   * @example
   * ```ts
   * const submission = app.outagelessFormats.for('mod_assign', 'submission')
   * await db.insertInto('assign_submissions').values({ body, format_version: submission.write }).execute()
   * const row = await db.selectFrom('assign_submissions').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
   * if (!submission.canRead(row)) return reply.code(503).header('retry-after', '30').send({ error: 'try again later' })
   * ```
   */
  for(component: string, name: string): FormatHandle;
}

/**
 * Builds `app.outagelessFormats` from the code's validated formats.
 *
 * @example
 * ```ts
 * app.decorate('outagelessFormats', createFormatsApi(await loadSiteFormats(code)))
 * ```
 */
export function createFormatsApi(formats: readonly LoadedFormat[]): OutagelessFormats {
  const handles = new Map<string, FormatHandle>();
  for (const format of formats) {
    handles.set(`${format.component}/${format.name}`, Object.freeze({
      component: format.component,
      format: format.name,
      write: format.write,
      read: format.read,
      versionColumn: format.versionColumn,
      canRead: (row: Readonly<Record<string, unknown>>) => {
        const value = row[format.versionColumn];
        const version = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
        return version >= format.read;
      },
    }));
  }
  return {
    for(component, name) {
      const handle = handles.get(`${component}/${name}`);
      if (!handle) throw formatErrors.unknownFormat(component, name, formats.filter((format) => format.component === component).map((format) => format.name));
      return handle;
    },
  };
}
