import { sql, type Kysely } from 'kysely';
import { errors } from '../errors.ts';
import { dataType, defaultExpression, withRollback } from './ddl.ts';
import type { SchemaDefinition } from './definition.ts';

/**
 * Checks of the whole site's declared schema that no single `db/schema.ts` can make on its
 * own: foreign keys across components, tables claimed twice, and defaults the database would
 * refuse. They run before the first write of an upgrade or install, so a mistake in one
 * component never surfaces as a failed CREATE TABLE after others were installed.
 */

/** One component's validated `db/schema.ts`. */
export interface DeclaredSchema {
  readonly component: string;
  /** Relative to the site root, for messages. */
  readonly file: string;
  readonly schema: SchemaDefinition;
  /** What this run does to the component. In a conflict, the one installed (then upgraded) now is named. */
  readonly change: 'install' | 'upgrade' | 'none';
}

const RANK = { install: 2, upgrade: 1, none: 0 } as const;

/**
 * Cross-component checks, without a database: every foreign key points at a table some
 * component declares, at columns that table has and that form its primary key or a unique
 * index; no table is declared by two components.
 *
 * @example
 * ```ts
 * checkSiteSchema([
 *   { component: 'core', file: 'core/db/schema.ts', schema: core, change: 'none' },
 *   { component: 'mod_assign', file: 'plugins/mod/assign/db/schema.ts', schema: assign, change: 'install' },
 * ])
 * ```
 */
export function checkSiteSchema(schemas: readonly DeclaredSchema[]): void {
  const owners = new Map<string, DeclaredSchema>();
  for (const declared of schemas) {
    for (const table of Object.keys(declared.schema.tables)) {
      const first = owners.get(table);
      if (!first) {
        owners.set(table, declared);
        continue;
      }
      // Name the component that brings the conflict in: the one this run installs, or changes.
      const [kept, culprit] = RANK[first.change] > RANK[declared.change] ? [declared, first] : [first, declared];
      throw errors.tableConflict(culprit.file, culprit.component, table, kept.component, kept.file);
    }
  }

  for (const declared of schemas) {
    for (const [table, definition] of Object.entries(declared.schema.tables)) {
      (definition.foreignKeys ?? []).forEach((foreignKey, position) => {
        const at = `tables.${table}.foreignKeys[${position}].references`;
        const target = foreignKey.references.table;
        const owner = owners.get(target);
        if (!owner) {
          throw errors.foreignKeyTarget(declared.file, declared.component, `${at}.table`, `table ${table}: foreign key ${position} references table ${target}, which no component of this site declares`);
        }
        const targetTable = owner.schema.tables[target]!;
        foreignKey.references.columns.forEach((column, index) => {
          if (!Object.hasOwn(targetTable.columns, column)) {
            throw errors.foreignKeyTarget(
              declared.file,
              declared.component,
              `${at}.columns[${index}]`,
              `table ${table}: foreign key ${position} references ${target}.${column}, but ${owner.component} (${owner.file}) declares no such column`,
            );
          }
        });
        // PostgreSQL refuses a foreign key whose target columns are not exactly a unique key.
        const wanted = [...foreignKey.references.columns].sort().join(',');
        const keys = [targetTable.primaryKey ?? [], ...(targetTable.indexes ?? []).filter((index) => index.unique).map((index) => index.columns)];
        if (!keys.some((key) => [...key].sort().join(',') === wanted)) {
          throw errors.foreignKeyTarget(
            declared.file,
            declared.component,
            `${at}.columns`,
            `table ${table}: foreign key ${position} references ${target} (${foreignKey.references.columns.join(', ')}), which is not its primary key or a unique index`,
          );
        }
      });
    }
  }
}

/** SQLSTATE 42501. */
const INSUFFICIENT_PRIVILEGE = '42501';

/** Schemas whose defaults the database already accepted in this process. */
const checkedDefaults = new WeakSet<SchemaDefinition>();

/**
 * Asks the database about every column default of `schemas`, inside a transaction that is
 * rolled back: nothing persists. Each default is first parsed as `SELECT (<default>)` through
 * the extended protocol (one statement, nothing evaluated: the WHERE is a false parameter),
 * then declared on a temporary column of its type, which is exactly what CREATE TABLE will do.
 *
 * @example
 * ```ts
 * await checkDefaults(db, [{ component: 'mod_assign', file: 'plugins/mod/assign/db/schema.ts', schema, change: 'install' }])
 * ```
 */
export async function checkDefaults(db: Kysely<any>, schemas: readonly DeclaredSchema[]): Promise<void> {
  const columns = schemas.filter((declared) => !checkedDefaults.has(declared.schema)).flatMap((declared) =>
    Object.entries(declared.schema.tables).flatMap(([table, definition]) =>
      Object.entries(definition.columns)
        .filter(([, column]) => !column.autoIncrement && column.default !== undefined && column.default !== null)
        .map(([column, columnDefinition]) => ({ declared, table, column, definition: columnDefinition })),
    ),
  );
  if (columns.length === 0) return;
  await withRollback(db, async (trx) => {
    for (const [index, { declared, table, column, definition }] of columns.entries()) {
      const fail = (cause: unknown): never => {
        const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
        throw errors.defaultInvalid(declared.file, declared.component, table, column, `${describeDefault(definition.default)} is refused by the database: ${reason}`, typeof definition.default === 'object' ? 'sql' : 'literal');
      };
      let expression;
      try {
        expression = defaultExpression(definition.default)!;
      } catch (error) {
        fail(error);
      }
      const probe = `outageless_default_check_${index}`;
      await sql`savepoint outageless_default_check`.execute(trx);
      let stage: 'parse' | 'declare' = 'parse';
      try {
        if (typeof definition.default === 'object') await sql`select (${expression}) as value where ${false}`.execute(trx);
        stage = 'declare';
        await sql`create temporary table ${sql.id(probe)} (value ${dataType(definition.type)} default ${expression})`.execute(trx);
        await sql`release savepoint outageless_default_check`.execute(trx);
      } catch (error) {
        await sql`rollback to savepoint outageless_default_check`.execute(trx).catch(() => {});
        // A role without the TEMP privilege cannot declare the probe column: the parse above
        // is then the whole check, and CREATE TABLE has the last word as before.
        if (stage === 'declare' && (error as { code?: unknown }).code === INSUFFICIENT_PRIVILEGE) continue;
        fail(error);
      }
    }
  });
  for (const declared of schemas) checkedDefaults.add(declared.schema);
}

function describeDefault(value: unknown): string {
  return value !== null && typeof value === 'object' ? `{ sql: ${JSON.stringify((value as { sql: string }).sql)} }` : JSON.stringify(value);
}
