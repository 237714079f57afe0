import { sql, type Kysely } from 'kysely';
import { compareSchemas, type SchemaDifference } from '../schema/diff.ts';
import { introspectSchema, type LiveColumn, type LiveSchema } from '../schema/introspect.ts';
import { isStateTable } from '../state/tables.ts';

/**
 * What a step may change, captured before and after its second run: the schema as the
 * catalog prints it, and per table a row count plus a digest of every row's text. Test
 * tables are small, so hashing whole tables is cheap and catches an unguarded
 * `update … set n = n + 1` that a count alone would miss.
 */
export interface Snapshot {
  readonly schema: LiveSchema;
  readonly tables: ReadonlyMap<string, { readonly rows: number; readonly digest: string }>;
}

/**
 * Reads a snapshot of the current schema, the framework's own tables left out.
 *
 * @example
 * ```ts
 * const before = await takeSnapshot(db)
 * await step.run(context)
 * const changes = describeChanges(before, await takeSnapshot(db))
 * ```
 */
export async function takeSnapshot(db: Kysely<any>): Promise<Snapshot> {
  const schema = await introspectSchema(db, { exclude: isStateTable });
  const tables = new Map<string, { rows: number; digest: string }>();
  for (const table of Object.keys(schema.tables)) {
    const { rows } = await sql<{ rows: number; digest: string }>`
      select count(*)::int as rows, md5(coalesce(string_agg(t::text, e'\n' order by t::text), '')) as digest
      from ${sql.table(table)} as t`.execute(db);
    tables.set(table, { rows: rows[0]?.rows ?? 0, digest: rows[0]?.digest ?? '' });
  }
  return { schema, tables };
}

/**
 * One line per change between two snapshots, worded as what the second run did; empty
 * when nothing changed.
 *
 * @example
 * ```ts
 * describeChanges(before, after)
 * // ['added column assign.colour (text NULL)', 'table assign: 3 rows before, 6 after']
 * ```
 */
export function describeChanges(before: Snapshot, after: Snapshot): string[] {
  const owners = new Map(Object.keys(before.schema.tables).map((table) => [table, table]));
  const lines = compareSchemas(before.schema, after.schema, owners).map(describeDifference);
  for (const [table, was] of before.tables) {
    const now = after.tables.get(table);
    if (!now) continue; // a dropped table is reported by the schema comparison
    if (now.rows !== was.rows) lines.push(`table ${table}: ${was.rows} row(s) before, ${now.rows} after`);
    else if (now.digest !== was.digest) lines.push(`table ${table}: changed the contents of its ${now.rows} row(s)`);
  }
  return lines;
}

function column(c: LiveColumn): string {
  return `${c.type} ${c.nullable ? 'NULL' : 'NOT NULL'}${c.default === null ? '' : ` DEFAULT ${c.default}`}${c.identity ? ' IDENTITY' : ''}`;
}

/** `compareSchemas` words its lines as "expected vs live"; here "before" is the expectation. */
function describeDifference(d: SchemaDifference): string {
  switch (d.kind) {
    case 'missing-table': return `dropped table ${d.table}`;
    case 'extra-table': return `created table ${d.table}`;
    case 'missing-column': return `dropped column ${d.table}.${d.column}`;
    case 'extra-column': return `added column ${d.table}.${d.column} (${column(d.actual)})`;
    case 'column-mismatch': return `changed column ${d.table}.${d.column} from ${column(d.expected)} to ${column(d.actual)}`;
    case 'primary-key-mismatch': return `changed the primary key of ${d.table}`;
    case 'missing-index': return `dropped index ${d.index} on ${d.table}`;
    case 'extra-index': return `added index ${d.index} on ${d.table} (${d.actual.columns.join(', ')})`;
    case 'index-mismatch': return `changed index ${d.index} on ${d.table}`;
    case 'missing-foreign-key': return `dropped foreign key ${d.foreignKey} on ${d.table}`;
    case 'extra-foreign-key': return `added foreign key ${d.foreignKey} on ${d.table}`;
    case 'foreign-key-mismatch': return `changed foreign key ${d.foreignKey} on ${d.table}`;
  }
}
