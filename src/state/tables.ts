import { sql, type Kysely } from 'kysely';
import { defineSchema } from '../schema/definition.ts';
import { installSchema } from '../schema/ddl.ts';

/**
 * The framework's own tables in the site database, declared with the same `defineSchema`
 * plugin authors use. They are prefixed `outageless_` and left out of `check-schema`.
 */
export const stateSchema = defineSchema({
  tables: {
    outageless_component: {
      columns: {
        component: { type: 'varchar(100)' },
        version: { type: 'bigint' },
        release: { type: 'varchar(100)', nullable: true },
        code_increment: { type: 'varchar(100)', nullable: true },
        definitions_hash: { type: 'varchar(64)' },
        // Per-file hashes of db/, so a verdict can name the file that changed.
        definitions: { type: 'json' },
        installed_at: { type: 'timestamp', default: { sql: 'now()' } },
        updated_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component'],
    },
    outageless_upgrade_log: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        run_id: { type: 'varchar(40)' },
        component: { type: 'varchar(100)' },
        step_id: { type: 'varchar(200)', nullable: true },
        version: { type: 'bigint' },
        // installed | applied | skipped | failed | upgraded
        status: { type: 'varchar(20)' },
        outage: { type: 'varchar(20)', nullable: true },
        started_at: { type: 'timestamp' },
        duration_ms: { type: 'integer' },
        error: { type: 'text', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['component', 'step_id'] }],
    },
    outageless_flag: {
      columns: {
        name: { type: 'varchar(100)' },
        value: { type: 'json' },
        updated_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['name'],
    },
  },
});

/** True for the framework's own tables, which no component declares. */
export function isStateTable(table: string): boolean {
  return table.startsWith('outageless_') || table.startsWith('pgboss');
}

/** True once the state tables exist: the site has been (or is being) installed. */
export async function stateTablesExist(db: Kysely<any>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`select to_regclass('outageless_component') is not null as present`.execute(db);
  return rows[0]?.present ?? false;
}

/** Creates the state tables when they are missing; run by the upgrader under its lock. */
export async function ensureStateTables(db: Kysely<any>): Promise<void> {
  if (await stateTablesExist(db)) return;
  await db.transaction().execute((trx) => installSchema(trx, stateSchema));
}
