import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import type { StepContext, UpgradeStep } from '../component/definitions.ts';
import type { ColumnDefinition, IndexDefinition, TableDefinition } from '../schema/definition.ts';
import { indexName } from '../schema/definition.ts';
import type { SchemaHelpers } from '../schema/helpers.ts';
import type { LiveSchema } from '../schema/introspect.ts';
import { assessHelperCall, assessStatement, describeCall, type HelperCall } from '../schema/online-safety.ts';

/**
 * The verified outage class (DESIGN §4.7): a step's `outage` is a claim, and the plan checks
 * it. Before anything runs, each pending step declared `none` is run dry: its `ctx.schema`
 * records the helper calls (answering `hasTable`/`hasColumn` from the live schema as it
 * would be by then), and its `ctx.db` compiles every query without sending it. Each call
 * and statement is then judged by what it does to the code still serving.
 */

/** Why a step declared `none` needs more, or what could not be verified. */
export type StepFinding =
  | { readonly kind: 'breaking' | 'blocking' | 'held-locks'; readonly reason: string; readonly alternative: string }
  | { readonly kind: 'unverified'; readonly reason: string };

export interface StepVerification {
  readonly calls: readonly HelperCall[];
  /** SQL the step sends through `ctx.db`, compiled but never executed. */
  readonly statements: readonly string[];
  readonly findings: readonly StepFinding[];
}

/** Dry runs that never finish (a step waiting on something real) are cut off here. */
const DRY_RUN_TIMEOUT_MS = 2000;

/** The live schema as a step's own earlier calls change it during the dry run. */
class SimulatedCatalog {
  readonly #tables = new Map<string, { columns: Set<string>; indexes: Set<string> }>();

  constructor(live: LiveSchema | undefined) {
    for (const table of Object.values(live?.tables ?? {})) {
      this.#tables.set(table.name, { columns: new Set(table.columns.map((c) => c.name)), indexes: new Set(table.indexes.map((i) => i.name)) });
    }
  }

  hasTable = (table: string) => this.#tables.has(table);
  hasColumn = (table: string, column: string) => this.#tables.get(table)?.columns.has(column) ?? false;
  hasIndex = (table: string, name: string) => this.#tables.get(table)?.indexes.has(name) ?? false;

  apply(call: HelperCall): void {
    const table = 'table' in call ? this.#tables.get(call.table) : undefined;
    switch (call.kind) {
      case 'createTable':
        if (!this.#tables.has(call.table)) {
          this.#tables.set(call.table, {
            columns: new Set(Object.keys(call.definition.columns)),
            indexes: new Set((call.definition.indexes ?? []).map((i) => indexName(call.table, i))),
          });
        }
        return;
      case 'dropTable':
        this.#tables.delete(call.table);
        return;
      case 'renameTable': {
        const moved = this.#tables.get(call.from);
        if (moved) {
          this.#tables.delete(call.from);
          this.#tables.set(call.to, moved);
        }
        return;
      }
      case 'addColumn':
        table?.columns.add(call.column);
        return;
      case 'dropColumn':
        table?.columns.delete(call.column);
        return;
      case 'renameColumn':
        if (table?.columns.delete(call.from)) table.columns.add(call.to);
        return;
      case 'addIndex':
        table?.indexes.add(indexName(call.table, call.index));
        return;
      case 'dropIndex':
        table?.indexes.delete(typeof call.index === 'string' ? call.index : indexName(call.table, call.index));
        return;
      default:
        return;
    }
  }
}

function recordingSchema(catalog: SimulatedCatalog, calls: HelperCall[]): SchemaHelpers {
  const record = async (call: HelperCall) => {
    calls.push(call);
    catalog.apply(call);
  };
  return {
    hasTable: async (table) => catalog.hasTable(table),
    hasColumn: async (table, column) => catalog.hasColumn(table, column),
    hasIndex: async (table, name) => catalog.hasIndex(table, name),
    createTable: (table: string, definition: TableDefinition) => record({ kind: 'createTable', table, definition }),
    dropTable: (table) => record({ kind: 'dropTable', table }),
    renameTable: (from, to) => record({ kind: 'renameTable', from, to }),
    addColumn: (table, column, definition: ColumnDefinition) => record({ kind: 'addColumn', table, column, definition }),
    dropColumn: (table, column) => record({ kind: 'dropColumn', table, column }),
    renameColumn: (table, from, to) => record({ kind: 'renameColumn', table, from, to }),
    changeColumn: (table, column, definition) => record({ kind: 'changeColumn', table, column, definition }),
    addIndex: (table, index: IndexDefinition) => record({ kind: 'addIndex', table, index }),
    dropIndex: (table, index) => record({ kind: 'dropIndex', table, index }),
    addForeignKey: (table, foreignKey) => record({ kind: 'addForeignKey', table, foreignKey }),
    dropForeignKey: (table, foreignKey) => record({ kind: 'dropForeignKey', table, foreignKey }),
    addCheck: (table, name, expression) => record({ kind: 'addCheck', table, name, expression }),
    dropCheck: (table, name) => record({ kind: 'dropCheck', table, name }),
    backfill: async (table) => {
      await record({ kind: 'backfill', table });
      return 0;
    },
  };
}

/** A Kysely that compiles every query for PostgreSQL, records it, and answers with no rows. */
function recordingDb(statements: string[]): Kysely<any> {
  return new Kysely<any>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
    log: (event) => {
      statements.push(event.query.sql);
    },
  });
}

/**
 * Dry-runs one step and judges what it would do while the site serves.
 *
 * @example
 * ```ts
 * const { findings } = await verifyStep(step, 'mod_assign', liveSchema)
 * if (findings.some((f) => f.kind === 'breaking')) console.log(findings[0].reason)
 * ```
 */
export async function verifyStep(step: UpgradeStep, component: string, live: LiveSchema | undefined): Promise<StepVerification> {
  const calls: HelperCall[] = [];
  const statements: string[] = [];
  const db = recordingDb(statements);
  const context: StepContext = { db, schema: recordingSchema(new SimulatedCatalog(live), calls), component, log: () => {} };
  const findings: StepFinding[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(() => step.run(context)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`did not finish within ${DRY_RUN_TIMEOUT_MS}ms`)), DRY_RUN_TIMEOUT_MS);
        timer.unref();
      }),
    ]);
  } catch (error) {
    // A step that reads rows and uses them cannot be followed without data; what it did up
    // to there is still judged below, and rehearse runs it for real.
    findings.push({
      kind: 'unverified',
      reason: `its dry run stopped (${error instanceof Error ? error.message : String(error)}); what it does after that is not verified: run \`outageless rehearse\``,
    });
  } finally {
    clearTimeout(timer);
    await db.destroy().catch(() => {});
  }

  for (const call of calls) {
    const verdict = assessHelperCall(call, live);
    if (verdict.kind === 'breaking') findings.push({ kind: 'breaking', reason: verdict.reason, alternative: verdict.alternative });
  }
  for (const statement of statements) {
    const verdict = assessStatement(statement);
    if (verdict.kind === 'unverified') findings.push({ kind: 'unverified', reason: verdict.reason });
    else if (verdict.kind !== 'safe') findings.push({ kind: verdict.kind, reason: verdict.reason, alternative: verdict.alternative });
  }
  const ddl = calls.some((call) => !['backfill'].includes(call.kind)) || statements.some((s) => /^\s*(alter|create|drop)\b/i.test(s));
  if (step.transaction === true && ddl) {
    findings.push({
      kind: 'held-locks',
      reason: `transaction: true keeps the lock of every DDL statement (${calls.map(describeCall).join(', ') || 'raw DDL'}) until the whole step commits`,
      alternative: 'leave transaction undeclared: an online step runs each helper call in its own short transaction (the step must then be idempotent, as helpers are)',
    });
  }
  return { calls, statements, findings };
}
