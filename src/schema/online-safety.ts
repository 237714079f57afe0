import type { ColumnDefinition, ForeignKeyDefinition, IndexDefinition, TableDefinition } from './definition.ts';
import { postgresType } from './ddl.ts';
import { sql, type Kysely } from 'kysely';

/**
 * What each `ctx.schema` helper does to code that is already serving (DESIGN §4.7): the
 * knowledge behind a verified outage class. The plan asks it about every helper a step
 * calls in its dry run, and the helpers ask it again at run time, so a step declared
 * `none` can never rename, drop or rewrite what the installed release reads.
 */

/**
 * What the installed release reads, as far as judging a change needs: tables and their
 * columns. A full `LiveSchema` fits, and {@link readSchemaShape} reads one without taking
 * a lock (so `status` never waits behind a running step's ACCESS EXCLUSIVE).
 */
export interface SchemaShape {
  readonly tables: Readonly<Record<string, { readonly columns: readonly { readonly name: string; readonly type: string; readonly nullable: boolean }[] }>>;
}

/**
 * Reads tables and columns of `current_schema()` from the catalog alone: no function that
 * opens a relation (such as `pg_get_expr`), so no lock is taken or waited for.
 *
 * @example
 * ```ts
 * const shape = await readSchemaShape(db, (table) => table.startsWith('outageless_'))
 * shape.tables.assign?.columns.map((c) => c.name)
 * ```
 */
export async function readSchemaShape(
  db: Kysely<any>,
  exclude: (table: string) => boolean = () => false,
  /** Only these tables (the rest of the shape is left out); all tables when undefined. */
  only?: readonly string[],
): Promise<SchemaShape> {
  // The plan judges a handful of tables: reading the catalog of a 500-table site for them
  // was a third of `upgrade --is-maintenance-required`.
  if (only !== undefined && only.length === 0) return { tables: {} };
  const { rows } = await sql<{ table: string; column: string; type: string; notnull: boolean }>`
    select c.relname as table, a.attname as column, pg_catalog.format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as notnull
    from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where n.nspname = pg_catalog.current_schema() and c.relkind in ('r', 'p')
      ${only === undefined ? sql`` : sql`and c.relname = any(${[...only]}::text[])`}
    order by c.relname, a.attnum`.execute(db);
  const tables: Record<string, { name: string; type: string; nullable: boolean }[]> = {};
  for (const row of rows) {
    if (exclude(row.table)) continue;
    (tables[row.table] ??= []).push({ name: row.column, type: row.type, nullable: !row.notnull });
  }
  return { tables: Object.fromEntries(Object.entries(tables).map(([name, columns]) => [name, { columns }])) };
}

/** One helper call, as the plan's dry run records it and the runtime guard sees it. */
export type HelperCall =
  | { readonly kind: 'createTable'; readonly table: string; readonly definition: TableDefinition }
  | { readonly kind: 'dropTable'; readonly table: string }
  | { readonly kind: 'renameTable'; readonly from: string; readonly to: string }
  | { readonly kind: 'addColumn'; readonly table: string; readonly column: string; readonly definition: ColumnDefinition }
  | { readonly kind: 'dropColumn'; readonly table: string; readonly column: string }
  | { readonly kind: 'renameColumn'; readonly table: string; readonly from: string; readonly to: string }
  | { readonly kind: 'changeColumn'; readonly table: string; readonly column: string; readonly definition: ColumnDefinition }
  | { readonly kind: 'addIndex'; readonly table: string; readonly index: IndexDefinition }
  | { readonly kind: 'dropIndex'; readonly table: string; readonly index: string | IndexDefinition }
  | { readonly kind: 'addForeignKey'; readonly table: string; readonly foreignKey: ForeignKeyDefinition }
  | { readonly kind: 'dropForeignKey'; readonly table: string; readonly foreignKey: string | ForeignKeyDefinition }
  | { readonly kind: 'addCheck'; readonly table: string; readonly name: string; readonly expression: string }
  | { readonly kind: 'dropCheck'; readonly table: string; readonly name: string }
  | { readonly kind: 'backfill'; readonly table: string };

/**
 * `safe`: runs online as the helpers do it (possibly through a safe multi-statement path).
 * `breaking`: the installed release's code breaks, so the step needs at least `component`.
 */
export type OnlineVerdict =
  | { readonly kind: 'safe'; readonly how?: string }
  | { readonly kind: 'breaking'; readonly helper: string; readonly reason: string; readonly alternative: string };

const POST_STEP = "in a phase: 'post' step, once no front runs the old code";

/** `schema.renameColumn('assign', 'name', 'title')`, for messages. */
export function describeCall(call: HelperCall): string {
  const quote = (value: unknown) => (typeof value === 'string' ? `'${value}'` : '{…}');
  switch (call.kind) {
    case 'renameTable':
      return `schema.renameTable(${quote(call.from)}, ${quote(call.to)})`;
    case 'renameColumn':
      return `schema.renameColumn(${quote(call.table)}, ${quote(call.from)}, ${quote(call.to)})`;
    case 'addColumn':
    case 'dropColumn':
    case 'changeColumn':
      return `schema.${call.kind}(${quote(call.table)}, ${quote(call.column)}${call.kind === 'dropColumn' ? '' : ', {…}'})`;
    default:
      return `schema.${call.kind}(${quote(call.table)}, …)`;
  }
}

function liveColumn(old: SchemaShape | undefined, table: string, column: string) {
  return old?.tables[table]?.columns.find((c) => c.name === column);
}

/** Whether the installed release reads `table` (unknown schema: assume it does). */
function oldCodeReads(old: SchemaShape | undefined, table: string, column?: string): boolean {
  if (!old) return true;
  const live = old.tables[table];
  if (!live) return false;
  return column === undefined || live.columns.some((c) => c.name === column);
}

/**
 * Judges one helper call against the schema the installed release reads (`old`, the live
 * schema before the upgrade; undefined when unknown, which judges conservatively).
 *
 * @example
 * ```ts
 * assessHelperCall({ kind: 'renameColumn', table: 'assign', from: 'name', to: 'title' }, live)
 * // { kind: 'breaking', reason: "schema.renameColumn('assign', 'name', 'title') breaks …", alternative: '…' }
 * ```
 */
export function assessHelperCall(call: HelperCall, old: SchemaShape | undefined): OnlineVerdict {
  const helper = describeCall(call);
  const breaking = (reason: string, alternative: string): OnlineVerdict => ({ kind: 'breaking', helper, reason: `${helper} ${reason}`, alternative });
  switch (call.kind) {
    case 'dropTable':
      return oldCodeReads(old, call.table)
        ? breaking(`drops ${call.table}, which the installed release reads: its requests fail until every front runs the new code`, `stop using ${call.table} in this release and drop it ${POST_STEP}`)
        : { kind: 'safe' };
    case 'renameTable':
      return oldCodeReads(old, call.from)
        ? breaking(
            `renames ${call.from}, which the installed release reads: its queries fail at once`,
            `create ${call.to} beside ${call.from}, write both from the new code, copy the rows with schema.backfill(), switch reads, and drop ${call.from} ${POST_STEP}`,
          )
        : { kind: 'safe' };
    case 'dropColumn':
      return oldCodeReads(old, call.table, call.column)
        ? breaking(`drops ${call.table}.${call.column}, which the installed release reads`, `stop reading ${call.column} in this release and drop it ${POST_STEP}`)
        : { kind: 'safe' };
    case 'renameColumn':
      return oldCodeReads(old, call.table, call.from)
        ? breaking(
            `renames ${call.table}.${call.from}, which the installed release still reads and writes`,
            `add ${call.to}, write both columns from the new code, fill ${call.to} with schema.backfill(), switch reads, then drop ${call.from} ${POST_STEP}`,
          )
        : { kind: 'safe' };
    case 'addColumn': {
      const required = !call.definition.nullable && !call.definition.autoIncrement && (call.definition.default === undefined || call.definition.default === null);
      if (required && oldCodeReads(old, call.table)) {
        return breaking(
          `adds ${call.table}.${call.column} as NOT NULL without a default: the installed release's INSERTs do not set it and fail`,
          'give the column a default, or add it nullable now and make it NOT NULL in a later release',
        );
      }
      return { kind: 'safe', how: 'metadata-only ADD COLUMN; a volatile default is set after the column and backfilled in batches' };
    }
    case 'changeColumn': {
      const current = liveColumn(old, call.table, call.column);
      if (!current) return old ? { kind: 'safe' } : breaking('may change the type of a column the installed release reads', 'see `outageless rehearse`');
      if (current.type !== postgresType(call.definition.type)) {
        return breaking(
          `changes ${call.table}.${call.column} from ${current.type} to ${postgresType(call.definition.type)}: the table is rewritten under an ACCESS EXCLUSIVE lock that blocks reads and writes`,
          `add a new column of the new type, fill it with schema.backfill(), switch the code to it, and drop ${call.column} ${POST_STEP}`,
        );
      }
      const nowRequired = current.nullable && !call.definition.nullable && !call.definition.autoIncrement;
      const hasDefault = call.definition.default !== undefined && call.definition.default !== null;
      if (nowRequired && !hasDefault) {
        return breaking(
          `makes ${call.table}.${call.column} NOT NULL without a default: the installed release's INSERTs that leave it out fail`,
          'give the column a default in the same change (the helper then adds NOT NULL online through a validated CHECK)',
        );
      }
      return { kind: 'safe', how: nowRequired ? 'NOT NULL through a NOT VALID check constraint, validated, then SET NOT NULL without a scan' : undefined };
    }
    case 'addIndex':
      return { kind: 'safe', how: 'CREATE INDEX CONCURRENTLY (an invalid index left by a failed build is dropped first)' };
    case 'addForeignKey':
    case 'addCheck':
      return { kind: 'safe', how: 'added NOT VALID, then VALIDATE under a lock that lets reads and writes through' };
    case 'backfill':
      return { kind: 'safe', how: 'key-range batches, each in its own short transaction' };
    default:
      return { kind: 'safe' };
  }
}

/**
 * Judges one SQL statement a step sends through `ctx.db` (raw SQL or the query builder).
 * This is a first line only: `outageless rehearse` observes the real locks and rewrites.
 */
export type StatementVerdict =
  | { readonly kind: 'safe' }
  | { readonly kind: 'unverified'; readonly reason: string }
  | { readonly kind: 'breaking' | 'blocking'; readonly reason: string; readonly alternative: string };

/**
 * @example
 * ```ts
 * assessStatement('alter table "assign" rename column "name" to "title"')
 * // { kind: 'breaking', reason: 'raw SQL renames a column …', alternative: '…' }
 * ```
 */
export function assessStatement(text: string): StatementVerdict {
  const statement = text.replace(/\s+/g, ' ').trim().toLowerCase();
  const shown = text.replace(/\s+/g, ' ').trim().slice(0, 120);
  const raw = (what: string) => `ctx.db sends \`${shown}\`, which ${what}`;
  if (/^alter table .* rename (column )?"?\w+"? to /.test(statement) && !/ rename constraint /.test(statement)) {
    return { kind: 'breaking', reason: raw('renames a column the installed release reads'), alternative: 'use the expand/contract path: add, backfill, switch, drop in a post step' };
  }
  if (/^alter table [^ ]+ rename to /.test(statement)) {
    return { kind: 'breaking', reason: raw('renames a table the installed release reads'), alternative: 'create the new table beside the old one and drop the old one in a post step' };
  }
  if (/^drop table /.test(statement) || /^alter table .* drop (column )?(?!constraint|default|not null|identity)/.test(statement)) {
    return { kind: 'breaking', reason: raw('drops what the installed release may read'), alternative: `drop it ${POST_STEP}` };
  }
  if (/^alter table .* alter (column )?"?\w+"? (set data )?type /.test(statement)) {
    return { kind: 'breaking', reason: raw('changes a column type: a table rewrite under ACCESS EXCLUSIVE'), alternative: 'add a new column, backfill it, switch, drop the old one in a post step' };
  }
  if (/^create (unique )?index (?!concurrently)/.test(statement)) {
    return { kind: 'blocking', reason: raw('builds an index without CONCURRENTLY: writes to the table block for the whole build'), alternative: 'use schema.addIndex(), which builds it concurrently' };
  }
  if (/ add (constraint "?\w+"? )?(foreign key|check|unique)/.test(statement) && !/ not valid\b/.test(statement)) {
    return { kind: 'blocking', reason: raw('adds a constraint that is checked against every row under a strong lock'), alternative: 'use schema.addForeignKey() or schema.addCheck(): NOT VALID, then VALIDATE' };
  }
  if (/^alter table .* set not null/.test(statement)) {
    return { kind: 'blocking', reason: raw('scans the whole table under ACCESS EXCLUSIVE to set NOT NULL'), alternative: 'use schema.changeColumn(), which goes through a validated CHECK first' };
  }
  if (/^(update|delete from) /.test(statement) && !/ where /.test(statement)) {
    return { kind: 'blocking', reason: raw('changes every row in one statement: its row locks block writers until it commits'), alternative: 'use schema.backfill(), which works in key-range batches of their own transactions' };
  }
  if (/^(alter|create|drop|lock|truncate|vacuum|cluster|reindex|refresh) /.test(statement)) {
    return { kind: 'unverified', reason: `${raw('is raw DDL the helpers do not vouch for')}; run \`outageless rehearse\` to observe its locks` };
  }
  return { kind: 'safe' };
}
