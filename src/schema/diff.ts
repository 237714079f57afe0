import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { installTables, withRollback } from './ddl.ts';
import type { SchemaDefinition, TableDefinition } from './definition.ts';
import { OutagelessError } from '../errors.ts';
import {
  currentSchema,
  introspectSchema,
  type LiveColumn,
  type LiveForeignKey,
  type LiveIndex,
  type LivePrimaryKey,
  type LiveSchema,
  type LiveTable,
} from './introspect.ts';

/**
 * Compares the live database with the declared schemas (`outageless check-schema`).
 *
 * The expected side is not computed by hand: the declared tables are installed into a
 * scratch schema with the same DDL code the installer uses, read back from the catalog, and
 * rolled back. Types and defaults therefore come out exactly as PostgreSQL prints them.
 */

interface Located {
  /** The component that declares the table. */
  readonly component: string;
  readonly table: string;
  /** One line for `check-schema` output, starting with the component and table. */
  readonly message: string;
}

export type SchemaDifference =
  | (Located & { readonly kind: 'missing-table' })
  | { readonly kind: 'extra-table'; readonly component: undefined; readonly table: string; readonly message: string }
  | (Located & { readonly kind: 'missing-column'; readonly column: string; readonly expected: LiveColumn })
  | (Located & { readonly kind: 'extra-column'; readonly column: string; readonly actual: LiveColumn })
  | (Located & { readonly kind: 'column-mismatch'; readonly column: string; readonly expected: LiveColumn; readonly actual: LiveColumn })
  | (Located & { readonly kind: 'primary-key-mismatch'; readonly expected: LivePrimaryKey | null; readonly actual: LivePrimaryKey | null })
  | (Located & { readonly kind: 'missing-index'; readonly index: string; readonly expected: LiveIndex })
  | (Located & { readonly kind: 'extra-index'; readonly index: string; readonly actual: LiveIndex })
  | (Located & { readonly kind: 'index-mismatch'; readonly index: string; readonly expected: LiveIndex; readonly actual: LiveIndex })
  | (Located & { readonly kind: 'missing-foreign-key'; readonly foreignKey: string; readonly expected: LiveForeignKey })
  | (Located & { readonly kind: 'extra-foreign-key'; readonly foreignKey: string; readonly actual: LiveForeignKey })
  | (Located & { readonly kind: 'foreign-key-mismatch'; readonly foreignKey: string; readonly expected: LiveForeignKey; readonly actual: LiveForeignKey });

export type SchemaDifferenceKind = SchemaDifference['kind'];

export interface DiffOptions {
  /** Tables ignored on both sides, such as the framework's own `outageless_*` tables. */
  readonly exclude?: (table: string) => boolean;
}

/**
 * Lists every difference between the live schema (`current_schema()`) and the declared
 * schemas, keyed by component. An empty list means install and upgrade agree.
 *
 * @example
 * ```ts
 * const differences = await diffSchema(db, new Map([['core', coreSchema], ['mod_assign', assignSchema]]), {
 *   exclude: (table) => table.startsWith('outageless_'),
 * })
 * for (const difference of differences) console.log(difference.message)
 * // mod_assign: table assign: column duedate missing (expected timestamp with time zone NULL)
 * ```
 */
export async function diffSchema(
  db: Kysely<any>,
  declared: ReadonlyMap<string, SchemaDefinition>,
  options: DiffOptions = {},
): Promise<SchemaDifference[]> {
  const exclude = options.exclude ?? (() => false);
  const owners = new Map<string, string>();
  const tables = new Map<string, TableDefinition>();
  for (const [component, schema] of declared) {
    for (const [table, definition] of Object.entries(schema.tables)) {
      if (exclude(table)) continue;
      const other = owners.get(table);
      if (other !== undefined) {
        throw new OutagelessError('OUTAGELESS_ERR_SCHEMA_INVALID', `table ${table} is declared by both ${other} and ${component}`, {
          location: { component, field: `tables.${table}` },
          hint: 'A table belongs to one component. Prefix plugin tables with the plugin name to keep them apart.',
        });
      }
      owners.set(table, component);
      tables.set(table, definition);
    }
  }

  const { live, expected } = await withRollback(db, async (trx) => {
    const liveSchema = await currentSchema(trx);
    const live = await introspectSchema(trx, { schema: liveSchema, exclude });
    const scratch = `outageless_expected_${randomBytes(6).toString('hex')}`;
    await sql`create schema ${sql.id(scratch)}`.execute(trx);
    // The live schema stays on the path so references to tables nobody declares still resolve.
    await sql`select pg_catalog.set_config('search_path', pg_catalog.quote_ident(${scratch}) || ', ' || pg_catalog.quote_ident(${liveSchema}), true)`.execute(trx);
    await installTables(trx, tables);
    const expected = await introspectSchema(trx, { schema: scratch });
    return { live, expected };
  });
  return compareSchemas(expected, live, owners);
}

/**
 * Compares two introspections. `owners` maps each expected table to its component.
 *
 * @example
 * ```ts
 * compareSchemas(await introspectSchema(a), await introspectSchema(b), new Map([['assign', 'mod_assign']]))
 * ```
 */
export function compareSchemas(expected: LiveSchema, actual: LiveSchema, owners: ReadonlyMap<string, string>): SchemaDifference[] {
  const differences: SchemaDifference[] = [];
  const names = [...new Set([...Object.keys(expected.tables), ...Object.keys(actual.tables)])].sort(codePointOrder);
  for (const table of names) {
    const want = expected.tables[table];
    const have = actual.tables[table];
    if (!want) {
      differences.push({ kind: 'extra-table', component: undefined, table, message: `table ${table}: not declared by any component` });
      continue;
    }
    const component = owners.get(table) ?? '(unknown component)';
    const prefix = `${component}: table ${table}`;
    if (!have) {
      differences.push({ kind: 'missing-table', component, table, message: `${prefix}: missing` });
      continue;
    }
    compareTable(want, have, component, prefix, differences);
  }
  return differences;
}

function compareTable(want: LiveTable, have: LiveTable, component: string, prefix: string, out: SchemaDifference[]): void {
  const table = want.name;
  matchByName(want.columns, have.columns, {
    missing: (expected) =>
      out.push({ kind: 'missing-column', component, table, column: expected.name, expected, message: `${prefix}: column ${expected.name} missing (expected ${describeColumn(expected)})` }),
    extra: (actual) =>
      out.push({ kind: 'extra-column', component, table, column: actual.name, actual, message: `${prefix}: column ${actual.name} is not declared (${describeColumn(actual)})` }),
    both: (expected, actual) => {
      const problems: string[] = [];
      if (expected.type !== actual.type) problems.push(`type is ${actual.type}, expected ${expected.type}`);
      if (expected.nullable !== actual.nullable) problems.push(actual.nullable ? 'is NULL, expected NOT NULL' : 'is NOT NULL, expected NULL');
      if (expected.default !== actual.default) problems.push(`default is ${actual.default ?? 'none'}, expected ${expected.default ?? 'none'}`);
      if (expected.identity !== actual.identity) problems.push(actual.identity ? 'is an identity column, expected not' : 'is not an identity column, expected one');
      if (problems.length) {
        out.push({ kind: 'column-mismatch', component, table, column: expected.name, expected, actual, message: `${prefix}: column ${expected.name} ${problems.join('; ')}` });
      }
    },
  });

  if (!sameJson(want.primaryKey, have.primaryKey)) {
    out.push({
      kind: 'primary-key-mismatch',
      component,
      table,
      expected: want.primaryKey,
      actual: have.primaryKey,
      message: `${prefix}: primary key is ${describePrimaryKey(have.primaryKey)}, expected ${describePrimaryKey(want.primaryKey)}`,
    });
  }

  matchByName(want.indexes, have.indexes, {
    missing: (expected) =>
      out.push({ kind: 'missing-index', component, table, index: expected.name, expected, message: `${prefix}: index ${expected.name} missing (expected ${describeIndex(expected)})` }),
    extra: (actual) =>
      out.push({ kind: 'extra-index', component, table, index: actual.name, actual, message: `${prefix}: index ${actual.name} is not declared (${describeIndex(actual)})` }),
    both: (expected, actual) => {
      if (sameJson(expected, actual)) return;
      out.push({
        kind: 'index-mismatch',
        component,
        table,
        index: expected.name,
        expected,
        actual,
        message: `${prefix}: index ${expected.name} is ${describeIndex(actual)}, expected ${describeIndex(expected)}`,
      });
    },
  });

  matchByName(want.foreignKeys, have.foreignKeys, {
    missing: (expected) =>
      out.push({
        kind: 'missing-foreign-key',
        component,
        table,
        foreignKey: expected.name,
        expected,
        message: `${prefix}: foreign key ${expected.name} missing (expected ${describeForeignKey(expected)})`,
      }),
    extra: (actual) =>
      out.push({
        kind: 'extra-foreign-key',
        component,
        table,
        foreignKey: actual.name,
        actual,
        message: `${prefix}: foreign key ${actual.name} is not declared (${describeForeignKey(actual)})`,
      }),
    both: (expected, actual) => {
      if (sameJson(expected, actual)) return;
      out.push({
        kind: 'foreign-key-mismatch',
        component,
        table,
        foreignKey: expected.name,
        expected,
        actual,
        message: `${prefix}: foreign key ${expected.name} is ${describeForeignKey(actual)}, expected ${describeForeignKey(expected)}`,
      });
    },
  });
}

function codePointOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Introspection output is plain data with a fixed key order, so JSON equality is exact. */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function matchByName<T extends { readonly name: string }>(
  expected: readonly T[],
  actual: readonly T[],
  visit: { missing: (expected: T) => void; extra: (actual: T) => void; both: (expected: T, actual: T) => void },
): void {
  const actualByName = new Map(actual.map((item) => [item.name, item]));
  const expectedNames = new Set(expected.map((item) => item.name));
  for (const item of expected) {
    const match = actualByName.get(item.name);
    if (match) visit.both(item, match);
    else visit.missing(item);
  }
  for (const item of actual) if (!expectedNames.has(item.name)) visit.extra(item);
}

function describeColumn(column: LiveColumn): string {
  return [
    column.type,
    column.nullable ? 'NULL' : 'NOT NULL',
    column.default !== null ? `DEFAULT ${column.default}` : '',
    column.identity ? 'GENERATED BY DEFAULT AS IDENTITY' : '',
  ]
    .filter(Boolean)
    .join(' ');
}

function describePrimaryKey(primaryKey: LivePrimaryKey | null): string {
  return primaryKey ? `${primaryKey.name} (${primaryKey.columns.join(', ')})` : 'none';
}

function describeIndex(index: LiveIndex): string {
  return `${index.unique ? 'unique ' : ''}(${index.columns.join(', ')})`;
}

function describeForeignKey(foreignKey: LiveForeignKey): string {
  return `(${foreignKey.columns.join(', ')}) references ${foreignKey.references.table} (${foreignKey.references.columns.join(', ')}) on delete ${foreignKey.onDelete}`;
}
