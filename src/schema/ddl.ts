import { sql, type ColumnDefinitionBuilder, type CreateTableBuilder, type Expression, type Kysely, type RawBuilder } from 'kysely';
import { z } from 'zod';
import {
  foreignKeyName,
  indexName,
  primaryKeyName,
  type ColumnDefault,
  type ColumnDefinition,
  type ColumnType,
  type ForeignKeyDefinition,
  type IndexDefinition,
  type SchemaDefinition,
  type TableDefinition,
} from './definition.ts';
import { errors } from '../errors.ts';
import { schemaErrors } from './errors.ts';

/**
 * DDL for the PostgreSQL family (PostgreSQL through `pg`, and PGlite): portable types to
 * PostgreSQL types, CREATE TABLE with keys, indexes and foreign keys, whole-component
 * installs, and validation of what plugin authors declare. Install, the upgrade helpers
 * and the schema diff all build their DDL here, so the three cannot drift apart.
 */

const SIMPLE_TYPES = {
  integer: 'integer',
  bigint: 'bigint',
  text: 'text',
  boolean: 'boolean',
  timestamp: 'timestamp with time zone',
  json: 'jsonb',
  binary: 'bytea',
} as const satisfies Record<string, string>;

const VARCHAR = /^varchar\(\s*(\d+)\s*\)$/;
const NUMERIC = /^numeric\(\s*(\d+)\s*,\s*(\d+)\s*\)$/;
/** PostgreSQL's limits for varchar length and numeric precision. */
const MAX_VARCHAR = 10_485_760;
const MAX_PRECISION = 1000;

const TYPE_LIST = 'integer, bigint, text, boolean, timestamp, json, binary, varchar(n), numeric(p,s)';

/** Why `type` is not a portable column type, or undefined when it is one. */
function typeProblem(type: string): string | undefined {
  if (Object.hasOwn(SIMPLE_TYPES, type)) return undefined;
  const varchar = VARCHAR.exec(type);
  if (varchar) {
    const length = Number(varchar[1]);
    return length >= 1 && length <= MAX_VARCHAR ? undefined : `varchar length must be between 1 and ${MAX_VARCHAR}`;
  }
  const numeric = NUMERIC.exec(type);
  if (numeric) {
    const precision = Number(numeric[1]);
    const scale = Number(numeric[2]);
    if (precision < 1 || precision > MAX_PRECISION) return `numeric precision must be between 1 and ${MAX_PRECISION}`;
    return scale <= precision ? undefined : 'numeric scale must not exceed its precision';
  }
  return `unknown type "${type}"`;
}

/**
 * The PostgreSQL type for a portable column type, spelled the way `format_type()` prints it,
 * so helpers can compare it with the catalog directly.
 *
 * @example
 * ```ts
 * postgresType('varchar(255)') // 'character varying(255)'
 * postgresType('json')         // 'jsonb'
 * ```
 */
export function postgresType(type: ColumnType): string {
  if (Object.hasOwn(SIMPLE_TYPES, type)) return SIMPLE_TYPES[type as keyof typeof SIMPLE_TYPES];
  const varchar = VARCHAR.exec(type);
  if (varchar) return `character varying(${Number(varchar[1])})`;
  const numeric = NUMERIC.exec(type);
  if (numeric) return `numeric(${Number(numeric[1])},${Number(numeric[2])})`;
  throw new Error(`unknown column type "${type}"`);
}

/**
 * The SQL of a column default, or undefined for none. `null` means no default: PostgreSQL
 * would store `NULL::type`, which reads as a difference for no benefit.
 */
export function defaultExpression(value: ColumnDefault | undefined): RawBuilder<unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'object') {
    // The text is pasted into DDL: it must not be able to end the statement or the clause.
    const problem = expressionProblem(value.sql);
    if (problem) throw new Error(`default { sql: ${JSON.stringify(value.sql)} } ${problem}`);
    return sql.raw(value.sql);
  }
  if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`default ${value} is not a finite number`);
  return sql.lit(value);
}

/**
 * Why `text` is not one self-contained SQL expression, or undefined when it may be one.
 * A lexical check: statement separators, comments and parentheses are looked for outside
 * string literals and quoted identifiers, so `0); drop table person; (` never reaches DDL.
 * Whether it is a valid expression of the column's type is for the database to say (see
 * `checkDefaults` in site-validation.ts).
 *
 * @example
 * ```ts
 * expressionProblem("now()")                  // undefined
 * expressionProblem("0); drop table person")  // 'contains ";" …'
 * ```
 */
export function expressionProblem(text: string): string | undefined {
  if (text.trim() === '') return 'is empty';
  let depth = 0;
  const identifierChar = /[A-Za-z0-9_$]/;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === "'") {
      // E'…' strings take backslash escapes; plain ones (standard_conforming_strings) do not.
      const escapes = /[eE]/.test(text[i - 1] ?? '') && !identifierChar.test(text[i - 2] ?? '');
      for (i++; ; i++) {
        if (i >= text.length) return 'has an unterminated string literal';
        if (escapes && text[i] === '\\') i++;
        else if (text[i] === "'") {
          if (text[i + 1] !== "'") break;
          i++;
        }
      }
      continue;
    }
    if (char === '"') {
      for (i++; ; i++) {
        if (i >= text.length) return 'has an unterminated quoted identifier';
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          i++;
        }
      }
      continue;
    }
    if (char === '$' && !identifierChar.test(text[i - 1] ?? '') && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(text.slice(i))) {
      return 'uses dollar quoting ($$…$$), which a default does not need: use a quoted string';
    }
    if (char === ';') return 'contains ";": it must be one expression, not statements';
    if (char === '-' && text[i + 1] === '-') return 'contains a comment ("--")';
    if (char === '/' && text[i + 1] === '*') return 'contains a comment ("/*")';
    if (char === '(') depth++;
    if (char === ')' && --depth < 0) return 'closes a parenthesis it never opened';
  }
  return depth > 0 ? 'leaves a parenthesis open' : undefined;
}

const BOOLEAN_LITERALS = new Set(['true', 'false', 't', 'f', 'yes', 'no', 'y', 'n', 'on', 'off', '1', '0']);
const INTEGER_RANGE = { integer: [-(2 ** 31), 2 ** 31 - 1], bigint: [-(2n ** 63n), 2n ** 63n - 1n] } as const;

/** Why a literal default does not fit its column's type, or undefined. The database cannot tell before an insert for some (a too-long varchar). */
function literalDefaultProblem(type: string, value: string): string | undefined {
  const text = value;
  if (type === 'integer' || type === 'bigint') {
    if (!/^[+-]?\d+$/.test(text.trim())) return `${JSON.stringify(value)} is not an integer`;
    const [min, max] = INTEGER_RANGE[type];
    const parsed = BigInt(text.trim());
    return parsed < BigInt(min) || parsed > BigInt(max) ? `${text} is out of range for ${type}` : undefined;
  }
  const numeric = NUMERIC.exec(type);
  if (numeric && !/^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/.test(value)) return `${JSON.stringify(value)} is not a number`;
  if (type === 'boolean' && !BOOLEAN_LITERALS.has(value.trim().toLowerCase())) return `${JSON.stringify(value)} is not a boolean`;
  const varchar = VARCHAR.exec(type);
  if (varchar && [...value].length > Number(varchar[1])) return `${JSON.stringify(value)} is longer than ${type} allows`;
  if (type === 'json') {
    try {
      JSON.parse(value);
    } catch {
      return `${JSON.stringify(value)} is not JSON`;
    }
  }
  return undefined;
}

/** The column clauses Kysely's builders share for CREATE TABLE and ADD COLUMN. */
export function columnClauses(definition: ColumnDefinition): (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder {
  return (column) => {
    let built = column;
    if (definition.autoIncrement) built = built.generatedByDefaultAsIdentity();
    if (definition.autoIncrement || !definition.nullable) built = built.notNull();
    const fallback = definition.autoIncrement ? undefined : defaultExpression(definition.default);
    if (fallback) built = built.defaultTo(fallback);
    return built;
  };
}

/** The type expression Kysely's column builders take. */
export function dataType(type: ColumnType): Expression<unknown> {
  return sql.raw(postgresType(type));
}

/** CREATE INDEX for one declared index; `concurrently` only outside a transaction. */
export function createIndexStatement(table: string, index: IndexDefinition, options: { concurrently?: boolean } = {}): RawBuilder<unknown> {
  return sql`create ${sql.raw(index.unique ? 'unique ' : '')}index ${sql.raw(options.concurrently ? 'concurrently ' : '')}if not exists ${sql.id(
    indexName(table, index),
  )} on ${sql.table(table)} (${sql.join(index.columns.map((column) => sql.id(column)))})`;
}

/**
 * ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY. `notValid` skips checking existing rows, so
 * the constraint can be validated later under a weaker lock.
 */
export function addForeignKeyStatement(table: string, foreignKey: ForeignKeyDefinition, options: { notValid?: boolean } = {}): RawBuilder<unknown> {
  const onDelete = foreignKey.onDelete && foreignKey.onDelete !== 'no action' ? sql` on delete ${sql.raw(foreignKey.onDelete)}` : sql``;
  return sql`alter table ${sql.table(table)} add constraint ${sql.id(foreignKeyName(table, foreignKey))} foreign key (${sql.join(
    foreignKey.columns.map((column) => sql.id(column)),
  )}) references ${sql.table(foreignKey.references.table)} (${sql.join(foreignKey.references.columns.map((column) => sql.id(column)))})${onDelete}${sql.raw(
    options.notValid ? ' not valid' : '',
  )}`;
}

/**
 * Creates one table with its primary key, foreign keys and indexes, named the way
 * {@link primaryKeyName}, {@link foreignKeyName} and {@link indexName} derive them.
 * `skipForeignKeys` leaves out foreign keys that must wait for a table created later.
 *
 * @example
 * ```ts
 * await createTable(db, 'assign', {
 *   columns: { id: { type: 'bigint', autoIncrement: true }, name: { type: 'varchar(255)' } },
 *   primaryKey: ['id'],
 *   indexes: [{ columns: ['name'] }],
 * })
 * ```
 */
export async function createTable(
  db: Kysely<any>,
  name: string,
  definition: TableDefinition,
  options: { skipForeignKeys?: (foreignKey: ForeignKeyDefinition) => boolean } = {},
): Promise<void> {
  // Columns come from data, so widen the builder's column-name type to string.
  let builder = db.schema.createTable(name) as CreateTableBuilder<string, string>;
  for (const [column, columnDefinition] of Object.entries(definition.columns)) {
    builder = builder.addColumn(column, dataType(columnDefinition.type), columnClauses(columnDefinition));
  }
  if (definition.primaryKey?.length) builder = builder.addPrimaryKeyConstraint(primaryKeyName(name), [...definition.primaryKey]);
  for (const foreignKey of definition.foreignKeys ?? []) {
    if (options.skipForeignKeys?.(foreignKey)) continue;
    builder = builder.addForeignKeyConstraint(
      foreignKeyName(name, foreignKey),
      [...foreignKey.columns],
      foreignKey.references.table,
      [...foreignKey.references.columns],
      (constraint) => (foreignKey.onDelete && foreignKey.onDelete !== 'no action' ? constraint.onDelete(foreignKey.onDelete) : constraint),
    );
  }
  await builder.execute();
  for (const index of definition.indexes ?? []) {
    let create = db.schema.createIndex(indexName(name, index)).on(name).columns([...index.columns]);
    if (index.unique) create = create.unique();
    await create.execute();
  }
}

/**
 * Creates a set of tables, referenced tables first. Foreign keys inside a cycle (a → b → a)
 * are added once every table of the set exists. Tables outside the set must already exist.
 *
 * @example
 * ```ts
 * await installTables(db, new Map([...Object.entries(core.tables), ...Object.entries(assign.tables)]))
 * ```
 */
export async function installTables(db: Kysely<any>, tables: ReadonlyMap<string, TableDefinition>): Promise<void> {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const deferred: { table: string; foreignKey: ForeignKeyDefinition }[] = [];
  const deferredSet = new Set<ForeignKeyDefinition>();

  const visit = (table: string): void => {
    state.set(table, 'visiting');
    for (const foreignKey of tables.get(table)?.foreignKeys ?? []) {
      const target = foreignKey.references.table;
      if (target === table || !tables.has(target)) continue;
      const seen = state.get(target);
      if (seen === 'visiting') {
        deferred.push({ table, foreignKey });
        deferredSet.add(foreignKey);
      } else if (seen === undefined) {
        visit(target);
      }
    }
    state.set(table, 'done');
    order.push(table);
  };
  for (const table of tables.keys()) if (!state.has(table)) visit(table);

  for (const table of order) {
    await createTable(db, table, tables.get(table)!, { skipForeignKeys: (foreignKey) => deferredSet.has(foreignKey) });
  }
  for (const { table, foreignKey } of deferred) await addForeignKeyStatement(table, foreignKey).execute(db);
}

/**
 * Installs every table of one component, tables referenced by foreign keys first. Tables
 * of other components that it references must be installed already (core installs first).
 *
 * @example
 * ```ts
 * import schema from './plugins/mod/assign/db/schema.ts'
 * await db.transaction().execute((trx) => installSchema(trx, schema))
 * ```
 */
export async function installSchema(db: Kysely<any>, schema: SchemaDefinition): Promise<void> {
  await installTables(db, new Map(Object.entries(schema.tables)));
}

// Shape checks; the cross-references (columns named by keys, type rules) follow by hand,
// because their messages must name the table and column.
const identifier = z
  .string()
  .max(63, 'must be at most 63 characters (PostgreSQL truncates longer names)')
  .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier (a-z, 0-9 and _, not starting with a digit)');
const columnList = z.array(identifier).min(1, 'must name at least one column');
const referentialAction = z.enum(['cascade', 'restrict', 'set null', 'no action'], { error: 'must be "cascade", "restrict", "set null" or "no action"' });

const schemaShape = z.object({
  kind: z.literal('schema', { error: 'default export must come from defineSchema({...})' }),
  tables: z.record(
    identifier,
    z.strictObject({
      columns: z.record(
        identifier,
        z.strictObject({
          type: z.string({ error: `must be a column type (${TYPE_LIST})` }),
          nullable: z.boolean().optional(),
          default: z.union([z.string(), z.number(), z.boolean(), z.null(), z.strictObject({ sql: z.string().min(1, 'must not be empty') })], {
            error: 'must be a string, number, boolean, null or { sql: "…" }',
          }).optional(),
          autoIncrement: z.boolean().optional(),
        }),
      ),
      primaryKey: columnList.optional(),
      indexes: z.array(z.strictObject({ columns: columnList, unique: z.boolean().optional(), name: identifier.optional() })).optional(),
      foreignKeys: z
        .array(
          z.strictObject({
            columns: columnList,
            references: z.strictObject({ table: identifier, columns: columnList }),
            onDelete: referentialAction.optional(),
            name: identifier.optional(),
          }),
        )
        .optional(),
    }),
  ),
});

function describePath(path: readonly PropertyKey[]): string {
  const parts: string[] = [];
  let rest = [...path];
  if (rest[0] === 'tables' && rest.length > 1) {
    parts.push(`table ${String(rest[1])}`);
    rest = rest.slice(2);
    if (rest[0] === 'columns' && rest.length > 1) {
      parts.push(`column ${String(rest[1])}`);
      rest = rest.slice(2);
    }
  }
  if (rest.length) parts.push(fieldPath(rest));
  return parts.join(': ');
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`)).join('');
}

/**
 * Validates a component's `db/schema.ts` default export. Each problem becomes an
 * `OUTAGELESS_ERR_SCHEMA_INVALID` error naming the file, table and column, so the author
 * sees it when the site loads rather than as a failed CREATE TABLE half way through install.
 *
 * @example
 * ```ts
 * const schema = validateSchema('plugins/mod/assign/db/schema.ts', 'mod_assign', (await import(file)).default)
 * ```
 */
export function validateSchema(file: string, component: string, schema: unknown): SchemaDefinition {
  const fail = (path: readonly PropertyKey[], problem: string, hint?: string): never => {
    throw schemaErrors.schemaInvalid(file, component, fieldPath(path) || 'default', `${describePath(path)}${path.length ? ': ' : ''}${problem}`, hint);
  };
  if (schema === undefined) throw errors.noDefaultExport(file, component, 'defineSchema({ tables: {...} })', []);
  const parsed = schemaShape.safeParse(schema);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A bad record key reports "Invalid key in record"; the key's own issue says why.
    const inner = issue.code === 'invalid_key' ? issue.issues[0] : undefined;
    fail(issue.path, inner?.message ?? issue.message);
  }
  const definition = schema as SchemaDefinition;

  // Index and primary key names share PostgreSQL's relation namespace with the tables.
  const relations = new Map<string, string>();
  const claim = (name: string, what: string, path: PropertyKey[]): void => {
    const other = relations.get(name);
    if (other) fail(path, `name "${name}" of ${what} is already used by ${other}`, 'Give the index an explicit, distinct name.');
    relations.set(name, what);
  };
  for (const table of Object.keys(definition.tables)) claim(table, `table ${table}`, ['tables', table]);

  for (const [table, tableDefinition] of Object.entries(definition.tables)) {
    const path = ['tables', table];
    const columns = tableDefinition.columns;
    const has = (column: string): boolean => Object.hasOwn(columns, column);
    if (Object.keys(columns).length === 0) fail([...path, 'columns'], 'a table needs at least one column');

    for (const [column, columnDefinition] of Object.entries(columns)) {
      const at = [...path, 'columns', column];
      const { type, autoIncrement, nullable } = columnDefinition;
      const problem = typeProblem(type);
      if (problem) fail([...at, 'type'], problem, `Use one of: ${TYPE_LIST}.`);
      const fallback = columnDefinition.default;
      if (autoIncrement) {
        if (type !== 'integer' && type !== 'bigint') fail([...at, 'autoIncrement'], `autoIncrement needs type integer or bigint, not ${type}`);
        if (nullable) fail([...at, 'nullable'], 'an autoIncrement column cannot be nullable');
        if (fallback !== undefined && fallback !== null) fail([...at, 'default'], 'an autoIncrement column cannot have a default');
      }
      if (typeof fallback === 'boolean' && type !== 'boolean') fail([...at, 'default'], `a boolean default does not fit type ${type}`);
      if (fallback !== null && typeof fallback === 'object') {
        const sqlProblem = expressionProblem(fallback.sql);
        if (sqlProblem) throw errors.defaultInvalid(file, component, table, column, `{ sql: ${JSON.stringify(fallback.sql)} } ${sqlProblem}`);
      }
      if (typeof fallback === 'string') {
        const literalProblem = literalDefaultProblem(type, fallback);
        if (literalProblem) throw errors.defaultInvalid(file, component, table, column, `${literalProblem} (the column is ${type})`, 'literal');
      }
      if (typeof fallback === 'number') {
        if (!Number.isFinite(fallback)) fail([...at, 'default'], 'a number default must be finite');
        const numeric = type === 'integer' || type === 'bigint' || NUMERIC.test(type);
        if (!numeric) fail([...at, 'default'], `a number default does not fit type ${type}; quote it as a string if that is meant`);
        if ((type === 'integer' || type === 'bigint') && !Number.isInteger(fallback)) fail([...at, 'default'], `default ${fallback} is not an integer`);
      }
    }

    const checkColumns = (list: readonly string[], at: PropertyKey[]): void => {
      const seen = new Set<string>();
      list.forEach((column, index) => {
        if (!has(column)) fail([...at, index], `column ${column} is not a column of table ${table}`);
        if (seen.has(column)) fail([...at, index], `column ${column} is listed twice`);
        seen.add(column);
      });
    };

    if (tableDefinition.primaryKey) {
      checkColumns(tableDefinition.primaryKey, [...path, 'primaryKey']);
      for (const column of tableDefinition.primaryKey) {
        if (columns[column]?.nullable) fail([...path, 'columns', column, 'nullable'], `column ${column} is in the primary key, so it cannot be nullable`);
      }
      claim(primaryKeyName(table), `the primary key of ${table}`, [...path, 'primaryKey']);
    }

    (tableDefinition.indexes ?? []).forEach((index, position) => {
      checkColumns(index.columns, [...path, 'indexes', position, 'columns']);
      claim(indexName(table, index), `index ${position} of ${table}`, [...path, 'indexes', position]);
    });

    const constraintNames = new Set<string>();
    (tableDefinition.foreignKeys ?? []).forEach((foreignKey, position) => {
      const at = [...path, 'foreignKeys', position];
      checkColumns(foreignKey.columns, [...at, 'columns']);
      if (foreignKey.references.columns.length !== foreignKey.columns.length) {
        fail([...at, 'references', 'columns'], `references ${foreignKey.references.columns.length} columns for ${foreignKey.columns.length} local ones`);
      }
      const target = definition.tables[foreignKey.references.table];
      if (target) {
        foreignKey.references.columns.forEach((column, index) => {
          if (!Object.hasOwn(target.columns, column)) {
            fail([...at, 'references', 'columns', index], `column ${column} is not a column of the referenced table ${foreignKey.references.table}`);
          }
        });
      }
      if (foreignKey.onDelete === 'set null') {
        for (const column of foreignKey.columns) {
          if (!columns[column]?.nullable) fail([...at, 'onDelete'], `on delete "set null" needs column ${column} to be nullable`);
        }
      }
      const name = foreignKeyName(table, foreignKey);
      if (constraintNames.has(name) || name === primaryKeyName(table)) fail(at, `constraint name "${name}" is used twice on table ${table}`);
      constraintNames.add(name);
    });
  }
  return definition;
}

class RollbackSignal extends Error {}

/**
 * Runs `work` and then undoes everything it did: in a savepoint when `db` is already a
 * transaction, otherwise in a transaction of its own. Used to build scratch schemas and
 * probe tables that must never persist.
 *
 * @example
 * ```ts
 * const count = await withRollback(db, async (trx) => {
 *   await sql`create temporary table probe (id int)`.execute(trx)
 *   return 1
 * })
 * ```
 */
export async function withRollback<T>(db: Kysely<any>, work: (trx: Kysely<any>) => Promise<T>): Promise<T> {
  if (db.isTransaction) {
    await sql`savepoint outageless_scratch`.execute(db);
    try {
      return await work(db);
    } finally {
      await sql`rollback to savepoint outageless_scratch`.execute(db);
      await sql`release savepoint outageless_scratch`.execute(db);
    }
  }
  let result: T | undefined;
  try {
    await db.transaction().execute(async (trx) => {
      result = await work(trx);
      throw new RollbackSignal();
    });
  } catch (error) {
    if (!(error instanceof RollbackSignal)) throw error;
  }
  return result as T;
}
