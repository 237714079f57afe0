import { sql, type Kysely } from 'kysely';

/**
 * Reads the live schema from the PostgreSQL catalog into plain, JSON-comparable data.
 * Types come from `format_type()` and defaults from `pg_get_expr()`, so two schemas built
 * by the same DDL read back identically without any normalization of our own.
 */

export interface LiveColumn {
  readonly name: string;
  /** As `format_type()` prints it, e.g. `character varying(255)`. */
  readonly type: string;
  readonly nullable: boolean;
  /** As `pg_get_expr()` prints it, e.g. `'x'::character varying`; null for none. */
  readonly default: string | null;
  /** An identity column (`generated … as identity`). */
  readonly identity: boolean;
}

export interface LivePrimaryKey {
  readonly name: string;
  readonly columns: readonly string[];
}

export interface LiveIndex {
  readonly name: string;
  readonly unique: boolean;
  /** Key columns (or expressions) in index order. */
  readonly columns: readonly string[];
}

export type LiveReferentialAction = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';

export interface LiveForeignKey {
  readonly name: string;
  readonly columns: readonly string[];
  readonly references: { readonly table: string; readonly columns: readonly string[] };
  readonly onDelete: LiveReferentialAction;
}

export interface LiveTable {
  readonly name: string;
  /** Ordered by name: an upgrade appends columns, while install uses declared order. */
  readonly columns: readonly LiveColumn[];
  readonly primaryKey: LivePrimaryKey | null;
  /** Every index but the primary key's, ordered by name. */
  readonly indexes: readonly LiveIndex[];
  readonly foreignKeys: readonly LiveForeignKey[];
}

export interface LiveSchema {
  /** Keyed by table name, inserted in name order. */
  readonly tables: Readonly<Record<string, LiveTable>>;
}

export interface IntrospectOptions {
  /** Defaults to `current_schema()`. */
  readonly schema?: string;
  /** Tables to leave out, such as the framework's own `outageless_*` tables. */
  readonly exclude?: (table: string) => boolean;
}

const ACTIONS: Record<string, LiveReferentialAction> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };

/** Code-point order, so the result does not depend on the locale. */
function byName<T extends { readonly name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Introspects every base table of a schema (partitions excluded).
 *
 * @example
 * ```ts
 * const live = await introspectSchema(db, { exclude: (table) => table.startsWith('outageless_') })
 * live.tables.assign?.columns.find((column) => column.name === 'duedate')?.type
 * // 'timestamp with time zone'
 * ```
 */
export async function introspectSchema(db: Kysely<any>, options: IntrospectOptions = {}): Promise<LiveSchema> {
  const schema = options.schema ?? (await currentSchema(db));
  const tables = await readTables(db, schema, undefined);
  const result: Record<string, LiveTable> = {};
  for (const table of tables) if (!options.exclude?.(table.name)) result[table.name] = table;
  return { tables: result };
}

/**
 * Introspects one table, or returns undefined when the schema has no such base table.
 *
 * @example
 * ```ts
 * const assign = await introspectTable(db, 'assign')
 * ```
 */
export async function introspectTable(db: Kysely<any>, table: string, options: { schema?: string } = {}): Promise<LiveTable | undefined> {
  const schema = options.schema ?? (await currentSchema(db));
  return (await readTables(db, schema, table))[0];
}

/** The schema unqualified names resolve to; an error when the search path names none. */
export async function currentSchema(db: Kysely<any>): Promise<string> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const schema = rows[0]?.schema;
  if (!schema) throw new Error('the search_path names no existing schema, so there is no current schema to read');
  return schema;
}

async function readTables(db: Kysely<any>, schema: string, only: string | undefined): Promise<LiveTable[]> {
  const tableFilter = only === undefined ? sql`` : sql` and c.relname = ${only}`;
  const base = sql`n.nspname = ${schema} and c.relkind in ('r', 'p') and not c.relispartition${tableFilter}`;

  const tableRows = await sql<{ table: string }>`
    select c.relname::text as table
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${base}`.execute(db);

  const columnRows = await sql<{ table: string } & LiveColumn>`
    select c.relname::text as table, a.attname::text as name,
      pg_catalog.format_type(a.atttypid, a.atttypmod) as type,
      not a.attnotnull as nullable,
      pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default,
      a.attidentity <> '' as identity
    from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      left join pg_catalog.pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
    where ${base}`.execute(db);

  const indexRows = await sql<{ table: string; name: string; primary: boolean; unique: boolean; columns: string[] }>`
    select c.relname::text as table, i.relname::text as name, x.indisprimary as primary, x.indisunique as unique,
      array(select pg_catalog.pg_get_indexdef(x.indexrelid, k, true)
            from generate_series(1, x.indnkeyatts::int) as k order by k) as columns
    from pg_catalog.pg_index x
      join pg_catalog.pg_class c on c.oid = x.indrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      join pg_catalog.pg_class i on i.oid = x.indexrelid
    where ${base}`.execute(db);

  const foreignKeyRows = await sql<{ table: string; name: string; columns: string[]; target: string; targetColumns: string[]; action: string }>`
    select c.relname::text as table, k.conname::text as name,
      array(select a.attname::text from unnest(k.conkey) with ordinality as u(attnum, ord)
            join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum order by u.ord) as columns,
      r.relname::text as target,
      array(select a.attname::text from unnest(k.confkey) with ordinality as u(attnum, ord)
            join pg_catalog.pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum order by u.ord) as "targetColumns",
      k.confdeltype::text as action
    from pg_catalog.pg_constraint k
      join pg_catalog.pg_class c on c.oid = k.conrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      join pg_catalog.pg_class r on r.oid = k.confrelid
    where k.contype = 'f' and ${base}`.execute(db);

  const tables = new Map<string, { columns: LiveColumn[]; primaryKey: LivePrimaryKey | null; indexes: LiveIndex[]; foreignKeys: LiveForeignKey[] }>();
  for (const { table } of tableRows.rows) tables.set(table, { columns: [], primaryKey: null, indexes: [], foreignKeys: [] });
  for (const row of columnRows.rows) {
    tables.get(row.table)?.columns.push({ name: row.name, type: row.type, nullable: row.nullable, default: row.default, identity: row.identity });
  }
  for (const row of indexRows.rows) {
    const entry = tables.get(row.table);
    if (!entry) continue;
    if (row.primary) entry.primaryKey = { name: row.name, columns: row.columns };
    else entry.indexes.push({ name: row.name, unique: row.unique, columns: row.columns });
  }
  for (const row of foreignKeyRows.rows) {
    tables.get(row.table)?.foreignKeys.push({
      name: row.name,
      columns: row.columns,
      references: { table: row.target, columns: row.targetColumns },
      onDelete: ACTIONS[row.action] ?? 'no action',
    });
  }

  return [...tables.entries()]
    .map(([name, entry]) => ({
      name,
      columns: entry.columns.sort(byName),
      primaryKey: entry.primaryKey,
      indexes: entry.indexes.sort(byName),
      foreignKeys: entry.foreignKeys.sort(byName),
    }))
    .sort(byName);
}
