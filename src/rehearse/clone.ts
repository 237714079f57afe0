import { sql, type Kysely } from 'kysely';
import { currentSchema } from '../schema/introspect.ts';

/**
 * Clones the live schema into a scratch schema of the same database, from the catalog:
 * sequences, tables (types from `format_type()`, defaults from `pg_get_expr()`, identity and
 * generated columns), constraints from `pg_get_constraintdef()` and indexes from
 * `pg_get_indexdef()`. Then it fills each table with generated rows, so the steps that run
 * on the copy do real work whose time can be scaled to the live table sizes.
 *
 * Everything is read from the live schema and written to the scratch one: the live side is
 * only ever read. Views, functions, triggers and partitions are not cloned; foreign keys to
 * tables outside the cloned set are left out, because they would attach triggers to live
 * tables.
 */

export interface ClonedTable {
  readonly name: string;
  /** Rows in the live table: `pg_class.reltuples`, or `count(*)` for a never-analyzed table. */
  readonly liveRows: number;
  /** Rows generated into the scratch copy. */
  readonly scratchRows: number;
  /** Why fewer rows than asked were generated (a constraint the generator cannot satisfy). */
  readonly note: string | undefined;
}

export interface CloneOptions {
  /** Rows to generate per table (0 for none). */
  readonly rows: number;
  /** Tables to leave out, such as the framework's own `outageless_*` tables. */
  readonly exclude: (table: string) => boolean;
}

export interface CloneResult {
  /** The live schema that was cloned (`current_schema()` of the live connection). */
  readonly liveSchema: string;
  readonly tables: readonly ClonedTable[];
}

/** Always quotes: catalog names are exact, and a quoted name never changes case. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

interface ColumnRow {
  readonly table: string;
  readonly name: string;
  readonly type: string;
  readonly notNull: boolean;
  readonly default: string | null;
  readonly identity: string;
  readonly generated: string;
  readonly collation: string | null;
}

interface ConstraintRow {
  readonly table: string;
  readonly name: string;
  readonly kind: 'p' | 'u' | 'x' | 'c' | 'f';
  readonly definition: string;
  readonly target: string | null;
  readonly targetSchema: string | null;
}

/**
 * Clones every base table of the live schema (`current_schema()` of `live`) into the current
 * schema of `scratch`, and fills it with `options.rows` generated rows per table.
 *
 * @example
 * ```ts
 * const { tables } = await cloneSchema(site.db, scratchDb, { rows: 1000, exclude: isStateTable })
 * tables.map((t) => `${t.name}: ${t.liveRows} live, ${t.scratchRows} in the copy`)
 * ```
 */
export async function cloneSchema(live: Kysely<any>, scratch: Kysely<any>, options: CloneOptions): Promise<CloneResult> {
  const liveSchema = await currentSchema(live);
  const inLive = sql`c.relnamespace = (select oid from pg_catalog.pg_namespace where nspname = ${liveSchema})`;

  const tableRows = (
    await sql<{ name: string; reltuples: number }>`
      select c.relname::text as name, c.reltuples::float8 as reltuples
      from pg_catalog.pg_class c
      where ${inLive} and c.relkind in ('r', 'p') and not c.relispartition
      order by c.relname`.execute(live)
  ).rows.filter((row) => !options.exclude(row.name));
  const names = new Set(tableRows.map((row) => row.name));

  // Sequences that identity columns do not own (serial columns, explicit sequences), so that
  // `nextval('name'::regclass)` defaults resolve to a scratch sequence, never a live one.
  const sequences = await sql<{ name: string }>`
    select c.relname::text as name from pg_catalog.pg_class c
    where ${inLive} and c.relkind = 'S'
      and not exists (select 1 from pg_catalog.pg_depend d where d.objid = c.oid and d.deptype = 'i')`.execute(live);

  const columns = await sql<ColumnRow>`
    select c.relname::text as table, a.attname::text as name,
      pg_catalog.format_type(a.atttypid, a.atttypmod) as type,
      a.attnotnull as "notNull",
      pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default,
      a.attidentity::text as identity, a.attgenerated::text as generated,
      case when a.attcollation <> t.typcollation and a.attcollation <> 0
        then (select pg_catalog.quote_ident(co.collname) from pg_catalog.pg_collation co where co.oid = a.attcollation) end as collation
    from pg_catalog.pg_class c
      join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      join pg_catalog.pg_type t on t.oid = a.atttypid
      left join pg_catalog.pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
    where ${inLive} and c.relkind in ('r', 'p') and not c.relispartition
    order by c.relname, a.attnum`.execute(live);

  // The live connection's search path contains the live schema, so the definitions name
  // its tables unqualified and resolve to the scratch copies when replayed there.
  const constraints = await sql<ConstraintRow>`
    select c.relname::text as table, k.conname::text as name, k.contype::text as kind,
      pg_catalog.pg_get_constraintdef(k.oid) as definition,
      r.relname::text as target, rn.nspname::text as "targetSchema"
    from pg_catalog.pg_constraint k
      join pg_catalog.pg_class c on c.oid = k.conrelid
      left join pg_catalog.pg_class r on r.oid = k.confrelid
      left join pg_catalog.pg_namespace rn on rn.oid = r.relnamespace
    where ${inLive} and c.relkind in ('r', 'p') and k.contype in ('p', 'u', 'x', 'c', 'f') and k.conparentid = 0
    order by c.relname, k.contype, k.conname`.execute(live);

  const indexes = await sql<{ table: string; definition: string; qualified: string }>`
    select c.relname::text as table, pg_catalog.pg_get_indexdef(x.indexrelid) as definition,
      pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) as qualified
    from pg_catalog.pg_index x
      join pg_catalog.pg_class c on c.oid = x.indrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where ${inLive} and c.relkind in ('r', 'p') and x.indisvalid
      and not exists (select 1 from pg_catalog.pg_constraint k where k.conindid = x.indexrelid and k.conrelid = x.indrelid and k.contype in ('p', 'u', 'x'))
    order by c.relname`.execute(live);

  for (const { name } of sequences.rows) await sql`create sequence ${sql.raw(quoteIdent(name))}`.execute(scratch);

  const byTable = new Map<string, ColumnRow[]>();
  for (const column of columns.rows) {
    if (!names.has(column.table)) continue;
    const list = byTable.get(column.table) ?? [];
    list.push(column);
    byTable.set(column.table, list);
  }
  for (const { name } of tableRows) {
    const parts = (byTable.get(name) ?? []).map(columnDefinition);
    await sql.raw(`create table ${quoteIdent(name)} (${parts.join(', ')})`).execute(scratch);
  }
  const foreignKeys: ConstraintRow[] = [];
  for (const constraint of constraints.rows) {
    if (!names.has(constraint.table)) continue;
    if (constraint.kind === 'f') {
      // Only references inside the clone: one to a live table would put triggers on it.
      if (constraint.targetSchema === liveSchema && constraint.target !== null && names.has(constraint.target)) foreignKeys.push(constraint);
      continue;
    }
    await sql.raw(`alter table ${quoteIdent(constraint.table)} add constraint ${quoteIdent(constraint.name)} ${constraint.definition}`).execute(scratch);
  }
  for (const index of indexes.rows) {
    if (!names.has(index.table)) continue;
    const local = quoteIdent(index.table);
    const definition = index.definition.replace(` ON ONLY ${index.qualified} `, ` ON ONLY ${local} `).replace(` ON ${index.qualified} `, ` ON ${local} `);
    if (definition !== index.definition) await sql.raw(definition).execute(scratch);
  }

  const order = referencedFirst(tableRows.map((row) => row.name), foreignKeys);
  const generated = new Map<string, { rows: number; note: string | undefined }>();
  if (options.rows > 0) {
    for (const table of order) generated.set(table, await generateRows(scratch, table, byTable.get(table) ?? [], options.rows));
  }
  // Foreign keys last: rows were generated to satisfy them, and a table the generator could
  // not fill leaves its referencing rows without partners, so those are emptied first.
  for (const foreignKey of foreignKeys) {
    const add = sql.raw(`alter table ${quoteIdent(foreignKey.table)} add constraint ${quoteIdent(foreignKey.name)} ${foreignKey.definition}`);
    try {
      await scratch.transaction().execute((trx) => add.execute(trx));
    } catch {
      await sql.raw(`truncate ${quoteIdent(foreignKey.table)} cascade`).execute(scratch);
      const note = `emptied: its generated rows did not satisfy foreign key ${foreignKey.name}`;
      generated.set(foreignKey.table, { rows: 0, note });
      await add.execute(scratch);
    }
  }

  const tables: ClonedTable[] = [];
  for (const { name, reltuples } of tableRows) {
    // -1: never vacuumed or analyzed (PostgreSQL 14+); such a table is usually new and small.
    const liveRows =
      reltuples >= 0
        ? Math.round(reltuples)
        : Number((await sql<{ count: string | number }>`select count(*) as count from ${sql.raw(`${quoteIdent(liveSchema)}.${quoteIdent(name)}`)}`.execute(live)).rows[0]?.count ?? 0);
    const rows = generated.get(name);
    tables.push({ name, liveRows, scratchRows: rows?.rows ?? 0, note: rows?.note });
  }
  return { liveSchema, tables };
}

function columnDefinition(column: ColumnRow): string {
  let text = `${quoteIdent(column.name)} ${column.type}`;
  if (column.collation) text += ` collate ${column.collation}`;
  if (column.generated === 's' && column.default !== null) text += ` generated always as (${column.default}) stored`;
  else if (column.identity === 'a') text += ' generated always as identity';
  else if (column.identity === 'd') text += ' generated by default as identity';
  else if (column.default !== null) text += ` default ${column.default}`;
  if (column.notNull && column.identity === '') text += ' not null';
  return text;
}

/** Referenced tables before the tables that reference them (cycles in any order). */
function referencedFirst(tables: readonly string[], foreignKeys: readonly ConstraintRow[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (table: string): void => {
    if (seen.has(table)) return;
    seen.add(table);
    for (const foreignKey of foreignKeys) if (foreignKey.table === table && foreignKey.target && foreignKey.target !== table) visit(foreignKey.target);
    order.push(table);
  };
  for (const table of tables) visit(table);
  return order;
}

/**
 * A value for row `g` (1…n) of a column, by type. Equal types get equal values, so a
 * foreign key column matches the key it references; strings carry `g`, so unique indexes
 * hold. Undefined: leave the column to its default.
 */
function valueExpression(type: string): string | undefined {
  if (type === 'smallint') return 'mod(g, 32767)';
  if (type === 'integer' || type === 'bigint') return 'g';
  const numeric = /^numeric\((\d+),(\d+)\)$/.exec(type);
  if (numeric) {
    const digits = Number(numeric[1]) - Number(numeric[2]);
    return digits > 0 ? `mod(g, ${10 ** Math.min(digits, 15)})` : '0';
  }
  if (type === 'numeric' || type === 'real' || type === 'double precision') return 'g';
  const sized = /^(?:character varying|character)\((\d+)\)$/.exec(type);
  if (sized) return `left('r' || g, ${Number(sized[1])})`;
  if (type === 'text' || type === 'character varying') return `'r' || g`;
  if (type === 'boolean') return '(g % 2 = 0)';
  if (type.startsWith('timestamp')) return `now() - g * interval '1 second'`;
  if (type === 'date') return 'current_date - g';
  if (type === 'jsonb') return `jsonb_build_object('n', g)`;
  if (type === 'json') return `json_build_object('n', g)`;
  if (type === 'bytea') return `convert_to(g::text, 'UTF8')`;
  if (type === 'uuid') return 'md5(g::text)::uuid';
  return undefined;
}

async function generateRows(db: Kysely<any>, table: string, columns: readonly ColumnRow[], count: number): Promise<{ rows: number; note: string | undefined }> {
  const fill = columns.filter((column) => column.identity !== 'a' && column.generated !== 's' && !(column.default ?? '').startsWith('nextval('));
  const attempt = async (nullable: 'fill' | 'null'): Promise<number> => {
    const chosen = fill.flatMap((column) => {
      const value = nullable === 'null' && !column.notNull ? 'null' : valueExpression(column.type);
      return value === undefined ? [] : [{ column, value }];
    });
    if (chosen.length === 0) return 0;
    const insert = `insert into ${quoteIdent(table)} (${chosen.map((c) => quoteIdent(c.column.name)).join(', ')})
      select ${chosen.map((c) => c.value).join(', ')} from pg_catalog.generate_series(1, ${count}) as g`;
    return db.transaction().execute(async (trx) => {
      const result = await sql.raw(insert).execute(trx);
      // Identity columns were given explicit values: move their sequences past them.
      for (const column of columns) {
        if (column.identity !== 'd' || !chosen.some((c) => c.column === column)) continue;
        await sql`select pg_catalog.setval(pg_catalog.pg_get_serial_sequence(${quoteIdent(table)}, ${column.name}), ${count})`.execute(trx);
      }
      return Number(result.numAffectedRows ?? 0);
    });
  };
  try {
    return { rows: await attempt('fill'), note: undefined };
  } catch (first) {
    try {
      return { rows: await attempt('null'), note: `nullable columns left empty: ${first instanceof Error ? first.message : String(first)}` };
    } catch (second) {
      return { rows: 0, note: `no rows generated: ${second instanceof Error ? second.message : String(second)}` };
    }
  }
}
