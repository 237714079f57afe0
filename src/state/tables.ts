import { sql, type Kysely } from 'kysely';
import { defineSchema } from '../schema/definition.ts';
import { createTable } from '../schema/ddl.ts';

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
        // installed | applied | skipped | failed | upgraded | uninstalled
        status: { type: 'varchar(20)' },
        outage: { type: 'varchar(20)', nullable: true },
        started_at: { type: 'timestamp' },
        duration_ms: { type: 'integer' },
        error: { type: 'text', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['component', 'step_id'] }],
    },
    // One row per upgrade run (src/upgrade/run-record.ts), written on its own connection as
    // the run takes the lock and when it ends: the history `outageless history` and
    // /admin/history show. A run whose process died keeps ended_at null.
    outageless_upgrade_run: {
      columns: {
        run_id: { type: 'varchar(40)' },
        // maintenance | online | staged (online with components paused one at a time)
        mode: { type: 'varchar(20)' },
        // all | pre | post
        phase: { type: 'varchar(20)' },
        // Who started it: cli, web (admin page), or api (runUpgrade called directly).
        started_by: { type: 'varchar(100)' },
        host: { type: 'varchar(255)' },
        pid: { type: 'integer' },
        started_at: { type: 'timestamp' },
        ended_at: { type: 'timestamp', nullable: true },
        // succeeded | failed | nothing (another upgrader had done it); null while it runs
        outcome: { type: 'varchar(20)', nullable: true },
        error_code: { type: 'varchar(100)', nullable: true },
        error_message: { type: 'text', nullable: true },
      },
      primaryKey: ['run_id'],
      indexes: [{ columns: ['started_at'] }],
    },
    // A run's progress lines, committed one by one outside the step transactions, so fronts
    // show a run of any process live. Only the newest runs keep theirs (see run-record.ts).
    outageless_upgrade_event: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        run_id: { type: 'varchar(40)' },
        seq: { type: 'integer' },
        at: { type: 'timestamp' },
        kind: { type: 'varchar(40)' },
        component: { type: 'varchar(100)', nullable: true },
        message: { type: 'text' },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['run_id', 'seq'] }],
    },
    outageless_flag: {
      columns: {
        name: { type: 'varchar(100)' },
        value: { type: 'json' },
        updated_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['name'],
    },
    // Components paused on their own (seed 001): no row means normal.
    outageless_component_state: {
      columns: {
        component: { type: 'varchar(100)' },
        // maintenance | post-install
        state: { type: 'varchar(20)' },
        reason: { type: 'text', nullable: true },
        // Set when an upgrade run paused it (a staged upgrade returns it to normal itself).
        paused_by_run: { type: 'varchar(40)', nullable: true },
        since: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component'],
    },
    // Per-component cache revisions: a purge of one component's caches moves only its revision.
    outageless_cache_revision: {
      columns: {
        component: { type: 'varchar(100)' },
        revision: { type: 'bigint' },
        updated_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component'],
    },
    // Scheduled tasks that came due while their component was paused (src/jobs): one row per
    // task however often it came due; a front claims it (delete … returning) and runs it once
    // when the component is back to normal.
    outageless_deferred_task: {
      columns: {
        component: { type: 'varchar(100)' },
        task: { type: 'varchar(200)' },
        // The parent of a subplugin, which pauses for it.
        parent: { type: 'varchar(100)', nullable: true },
        times: { type: 'integer' },
        first_deferred_at: { type: 'timestamp', default: { sql: 'now()' } },
        last_deferred_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component', 'task'],
    },
    // Each front (web process) registers itself and refreshes last_seen; rows age out.
    // The installed read/write versions of each component's data formats (db/formats.ts),
    // written with the component's version: the next plan compares the code with them.
    outageless_format: {
      columns: {
        component: { type: 'varchar(100)' },
        format: { type: 'varchar(100)' },
        read_version: { type: 'integer' },
        write_version: { type: 'integer' },
        updated_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component', 'format'],
    },
    outageless_front: {
      columns: {
        id: { type: 'varchar(40)' },
        host: { type: 'varchar(255)' },
        pid: { type: 'integer' },
        url: { type: 'varchar(255)', nullable: true },
        root: { type: 'text' },
        started_at: { type: 'timestamp' },
        last_seen: { type: 'timestamp' },
        // component -> { version, codeIncrement } of the code this front runs
        components: { type: 'json' },
      },
      primaryKey: ['id'],
    },
    // Admin sessions (src/fastify/admin-session.ts): the cookie names a row, so logout and a
    // change of the admin secret revoke it. Only hashes are kept: of the session id, and of
    // the admin secret's fingerprint the session was issued under.
    outageless_admin_session: {
      columns: {
        id: { type: 'varchar(64)' },
        secret_fingerprint: { type: 'varchar(64)' },
        created_at: { type: 'timestamp' },
        expires_at: { type: 'timestamp' },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['expires_at'] }],
    },
    // What operators did from the admin console or the CLI (src/state/operator-log.ts): each
    // maintenance switch, pause, resume, purge and UI lock change, done or refused.
    outageless_admin_action: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        at: { type: 'timestamp', default: { sql: 'now()' } },
        // web | cli
        actor: { type: 'varchar(20)' },
        // The hash of the admin session (outageless_admin_session.id), never the cookie's id.
        session_id: { type: 'varchar(64)', nullable: true },
        // The client address (web) or user@host pid (cli).
        client: { type: 'varchar(255)', nullable: true },
        // maintenance-on | maintenance-off | pause | resume | purge-caches | ui-lock-set | ui-lock-clear
        action: { type: 'varchar(40)' },
        target: { type: 'varchar(200)', nullable: true },
        // done | refused | failed
        outcome: { type: 'varchar(20)' },
        error_code: { type: 'varchar(100)', nullable: true },
        detail: { type: 'text', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['at'] }],
    },
    // Batched background migrations (src/migrations): the row IS the durable progress. Each
    // batch locks it FOR UPDATE SKIP LOCKED and moves the cursor in the batch's own
    // transaction, so a batch commits with its bookkeeping or not at all.
    // Post steps owed once their component's main steps are done (DESIGN §4.5): a row per step
    // until `upgrade` (or `upgrade --phase post`) runs it, once no old front holds it back.
    outageless_owed_step: {
      columns: {
        component: { type: 'varchar(100)' },
        step_id: { type: 'varchar(200)' },
        version: { type: 'bigint' },
        since: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component', 'step_id'],
    },
    // Manual actions owed (`phase: 'manual'`, src/migrations/manual.ts): a row from the moment
    // the runner reaches the action's version until an operator runs it (or a later release's
    // step of the same id runs it automatically).
    outageless_owed_manual: {
      columns: {
        component: { type: 'varchar(100)' },
        step_id: { type: 'varchar(200)' },
        version: { type: 'bigint' },
        description: { type: 'text' },
        estimate: { type: 'text' },
        since: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component', 'step_id'],
    },
    // The tables each component's db/schema.ts declared at its last install or upgrade, and its
    // parent (subplugins), written with its installed record: `outageless uninstall` drops them
    // once the code is gone (src/upgrade/uninstall.ts). No row: installed by an older outageless.
    outageless_component_schema: {
      columns: {
        component: { type: 'varchar(100)' },
        parent: { type: 'varchar(100)', nullable: true },
        tables: { type: 'json' },
        recorded_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component'],
    },
    outageless_background_migration: {
      columns: {
        component: { type: 'varchar(100)' },
        id: { type: 'varchar(200)' },
        version: { type: 'bigint' },
        table_name: { type: 'varchar(200)' },
        key_column: { type: 'varchar(200)' },
        // queued | running | paused | finished | failed | cancelled
        state: { type: 'varchar(20)' },
        // Key range at queue time (null for an empty table); every key <= cursor is done.
        min_key: { type: 'bigint', nullable: true },
        max_key: { type: 'bigint', nullable: true },
        cursor: { type: 'bigint', nullable: true },
        batch_size: { type: 'integer' },
        batches: { type: 'bigint', default: 0 },
        rows_changed: { type: 'bigint', default: 0 },
        // Optimizer: EMA of ms per key of the successful batches (null before the first).
        ema_ms_per_key: { type: 'numeric(18,6)', nullable: true },
        // Failures of the batch starting at cursor+1, and when the next attempt is due.
        attempts: { type: 'integer', default: 0 },
        retry_at: { type: 'timestamp', nullable: true },
        // While a failing range is split: batches are at most split_size keys up to split_end.
        split_size: { type: 'integer', nullable: true },
        split_end: { type: 'bigint', nullable: true },
        error: { type: 'text', nullable: true },
        failed_key: { type: 'bigint', nullable: true },
        queued_at: { type: 'timestamp', default: { sql: 'now()' } },
        started_at: { type: 'timestamp', nullable: true },
        finished_at: { type: 'timestamp', nullable: true },
        updated_at: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['component', 'id'],
    },
  },
});

/** True for the framework's own tables, which no component declares. */
export function isStateTable(table: string): boolean {
  return table.startsWith('outageless_') || table.startsWith('pgboss');
}

/** True when `table` exists in the current schema. */
export async function tableExists(db: Kysely<any>, table: string): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`select to_regclass(${table}) is not null as present`.execute(db);
  return rows[0]?.present ?? false;
}

/** True once the state tables exist: the site has been (or is being) installed. */
export function stateTablesExist(db: Kysely<any>): Promise<boolean> {
  return tableExists(db, 'outageless_component');
}

// Serializes creation of the state tables: fronts and upgraders may start at the same moment.
const CREATE_LOCK = 0x6f757473;

/**
 * Creates whichever state tables are missing (a site installed by an older outageless gains
 * the newer ones). Run by the upgrader under its lock and by fronts as they register.
 */
export async function ensureStateTables(db: Kysely<any>): Promise<void> {
  const names = Object.keys(stateSchema.tables) as (keyof typeof stateSchema.tables)[];
  const missing = async (executor: Kysely<any>) => {
    const { rows } = await sql<{ name: string; present: boolean }>`
      select name, to_regclass(name) is not null as present from unnest(${names}::text[]) as name`.execute(executor);
    return rows.filter((row) => !row.present).map((row) => row.name);
  };
  if ((await missing(db)).length === 0) return;
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${CREATE_LOCK})`.execute(trx);
    for (const name of await missing(trx)) await createTable(trx, name, stateSchema.tables[name as keyof typeof stateSchema.tables]);
  });
}
