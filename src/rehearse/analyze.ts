import type { OutageClass } from '../component/definitions.ts';
import type { LiveSchema } from '../schema/introspect.ts';
import { blocksWrites, classifyStatement, lockRank, type LockMode, type LockSample, type RecordedStatement } from './observe.ts';

/**
 * Turns what a rehearsal saw of one step (statements, lock samples, schema and relfilenodes
 * before and after) into an observed outage class with reasons. Pure functions: the numbers
 * in, the verdict out.
 */

/** Sizes the rehearsal scales by, per table. */
export interface TableSize {
  readonly liveRows: number;
  readonly scratchRows: number;
}

export interface ObservedStatement {
  readonly sql: string;
  readonly action: string | undefined;
  readonly durationMs: number;
  /** The duration at live size: its row-dependent part times live rows / scratch rows. */
  readonly scaledDurationMs: number;
  readonly rows: number | undefined;
  readonly tables: readonly string[];
  readonly error: string | undefined;
}

export interface ObservedLock {
  readonly table: string;
  readonly mode: LockMode;
  /** How long it was held in the rehearsal (until commit inside a transaction). */
  readonly heldMs: number;
  readonly scaledHeldMs: number;
  /** `statement`: read from the statement text; `monitor`: seen in pg_locks by a second connection; `pg_locks`: held at commit. */
  readonly source: 'statement' | 'monitor' | 'pg_locks';
}

export interface Rewrite {
  readonly table: string;
  readonly before: number;
  readonly after: number;
}

export type ReasonKind = 'breaks-old-code' | 'lock' | 'rewrite' | 'bulk-update';

export interface ObservedReason {
  readonly kind: ReasonKind;
  readonly outage: OutageClass;
  readonly table: string;
  readonly message: string;
}

export interface StepObservation {
  readonly statements: readonly ObservedStatement[];
  readonly locks: readonly ObservedLock[];
  readonly rewrites: readonly Rewrite[];
  readonly rowsTouched: number;
  readonly scaledDurationMs: number;
  /** False when a table the step worked on had no generated rows, so its times are not scaled. */
  readonly scaled: boolean;
  readonly observed: OutageClass;
  readonly reasons: readonly ObservedReason[];
  /** Relations outside the scratch schema that statements wrote to (they named a schema). */
  readonly liveWrites: readonly string[];
}

export interface StepEvidence {
  readonly component: string;
  /** A post step runs once no old front is left: breaking the old code is its purpose. */
  readonly phase?: 'pre' | 'main' | 'post';
  readonly startMs: number;
  readonly endMs: number;
  readonly statements: readonly RecordedStatement[];
  readonly samples: readonly LockSample[];
  /** Poll interval of the monitor, added to a sampled lock's span. */
  readonly sampleIntervalMs: number;
  /** Locks held just before commit (transactional steps). */
  readonly heldAtCommit: readonly { readonly table: string; readonly mode: LockMode }[];
  readonly before: LiveSchema;
  readonly after: LiveSchema;
  readonly relfilenodesBefore: ReadonlyMap<string, number>;
  readonly relfilenodesAfter: ReadonlyMap<string, number>;
  /** Index name → table, before the step (for DROP INDEX). */
  readonly indexTables: ReadonlyMap<string, string>;
  readonly scratchSchema: string;
}

export interface AnalysisContext {
  readonly sizes: ReadonlyMap<string, TableSize>;
  /** Lock budget in ms: a blocking lock held longer than this at live size is an outage. */
  readonly lockBudgetMs: number;
  /** Round trip of a trivial statement: the part of a duration that does not scale. */
  readonly baselineMs: number;
  /** The outage a change to `table` costs: `site` for core's tables and tables several components use. */
  readonly outageFor: (table: string, stepComponent: string) => OutageClass;
}

const RANK: Record<OutageClass, number> = { none: 0, component: 1, site: 2 };

/** True when `observed` is a stronger class than `declared`. */
export function moreDangerous(observed: OutageClass, declared: OutageClass): boolean {
  return RANK[observed] > RANK[declared];
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * Analyses one step of a rehearsal.
 *
 * @example
 * ```ts
 * const observation = analyzeStep(evidence, { sizes, lockBudgetMs: 200, baselineMs: 0.2, outageFor: () => 'component' })
 * if (observation.observed !== step.outage) console.log(observation.reasons.map((r) => r.message))
 * ```
 */
export function analyzeStep(evidence: StepEvidence, context: AnalysisContext): StepObservation {
  const reasons: ObservedReason[] = [];
  const add = (kind: ReasonKind, table: string, message: string) =>
    reasons.push({ kind, table, message, outage: context.outageFor(table, evidence.component) });
  const local = (schema: string | undefined) => schema === undefined || schema === evidence.scratchSchema;

  const rewrites: Rewrite[] = [];
  for (const [table, before] of evidence.relfilenodesBefore) {
    const after = evidence.relfilenodesAfter.get(table);
    if (after !== undefined && after !== before) rewrites.push({ table, before, after });
  }
  const rewritten = new Set(rewrites.map((r) => r.table));

  // Scale each statement: the part above a trivial round trip grows with the table.
  let unscaled = false;
  const provenNotNull = new Set<string>();
  const classified = evidence.statements.map((statement) => {
    const kind = classifyStatement(statement.sql, evidence.indexTables);
    if (kind.kind !== 'ddl' && kind.kind !== 'dml') return { statement, kind, tables: [] as string[], scaledMs: statement.durationMs };
    const tables = kind.locks.filter((lock) => local(lock.schema)).map((lock) => lock.table);
    const main = tables[0];
    let scans = kind.scans || (main !== undefined && rewritten.has(main) && kind.action.startsWith('alter table'));
    if (kind.kind === 'dml') scans = (statement.rows ?? 0) > 1;
    if (kind.setNotNull && main !== undefined && provenNotNull.has(main)) scans = false;
    if (kind.provesNotNull && main !== undefined) provenNotNull.add(main);
    let scaledMs = statement.durationMs;
    const size = main === undefined ? undefined : context.sizes.get(main);
    if (scans && size) {
      if (size.scratchRows > 0) scaledMs = context.baselineMs + Math.max(0, statement.durationMs - context.baselineMs) * (size.liveRows / size.scratchRows);
      else if (size.liveRows > 0) unscaled = true;
    }
    return { statement, kind, tables, scaledMs };
  });

  // A lock taken inside a transaction is held until its commit or rollback.
  const releaseAt: number[] = new Array<number>(classified.length).fill(0);
  let open: number[] | undefined;
  for (const [index, entry] of classified.entries()) {
    const end = entry.statement.startMs + entry.statement.durationMs;
    if (entry.kind.kind === 'begin') open = [];
    else if (entry.kind.kind === 'commit' || entry.kind.kind === 'rollback') {
      for (const held of open ?? []) releaseAt[held] = end;
      open = undefined;
    }
    releaseAt[index] = end;
    open?.push(index);
  }
  for (const held of open ?? []) releaseAt[held] = evidence.endMs;

  const scaledWithin = (from: number, to: number): number => {
    let extra = 0;
    for (const entry of classified) {
      const start = entry.statement.startMs;
      if (start >= from - 0.01 && start + entry.statement.durationMs <= to + 0.01) extra += entry.scaledMs - entry.statement.durationMs;
    }
    return to - from + extra;
  };

  const locks: ObservedLock[] = [];
  const liveWrites: string[] = [];
  for (const [index, entry] of classified.entries()) {
    if (entry.kind.kind !== 'ddl' && entry.kind.kind !== 'dml') continue;
    for (const lock of entry.kind.locks) {
      if (!local(lock.schema)) {
        if (lockRank(lock.mode) >= lockRank('RowExclusiveLock')) liveWrites.push(`${lock.schema}.${lock.table}`);
        continue;
      }
      const from = entry.statement.startMs;
      const to = releaseAt[index]!;
      locks.push({ table: lock.table, mode: lock.mode, heldMs: to - from, scaledHeldMs: scaledWithin(from, to), source: 'statement' });
    }
  }
  const covered = (table: string, mode: LockMode) => locks.some((lock) => lock.table === table && lockRank(lock.mode) >= lockRank(mode));

  // What the monitor saw that no statement text explained: spans of consecutive samples.
  const spans = new Map<string, { table: string; mode: LockMode; first: number; last: number }>();
  for (const sample of evidence.samples) {
    if (sample.schema !== evidence.scratchSchema) continue;
    const key = `${sample.table}\u0000${sample.mode}`;
    const span = spans.get(key);
    if (span) span.last = sample.atMs;
    else spans.set(key, { table: sample.table, mode: sample.mode, first: sample.atMs, last: sample.atMs });
  }
  for (const span of spans.values()) {
    if (covered(span.table, span.mode)) continue;
    const to = span.last + evidence.sampleIntervalMs;
    locks.push({ table: span.table, mode: span.mode, heldMs: to - span.first, scaledHeldMs: scaledWithin(span.first, to), source: 'monitor' });
  }
  for (const held of evidence.heldAtCommit) {
    if (covered(held.table, held.mode)) continue;
    const from = spans.get(`${held.table}\u0000${held.mode}`)?.first ?? evidence.startMs;
    locks.push({ table: held.table, mode: held.mode, heldMs: evidence.endMs - from, scaledHeldMs: scaledWithin(from, evidence.endMs), source: 'pg_locks' });
  }

  if (evidence.phase !== 'post') breakingChanges(evidence.before, evidence.after, (table, message) => add('breaks-old-code', table, message));

  // The strongest blocking lock per table decides; one reason per table is enough to act on.
  const worst = new Map<string, ObservedLock>();
  for (const lock of locks) {
    if (!blocksWrites(lock.mode) || (context.sizes.get(lock.table)?.liveRows ?? 0) === 0) continue;
    if (lock.scaledHeldMs <= context.lockBudgetMs) continue;
    const current = worst.get(lock.table);
    if (!current || lock.scaledHeldMs > current.scaledHeldMs) worst.set(lock.table, lock);
  }
  for (const lock of worst.values()) {
    const size = context.sizes.get(lock.table)!;
    const blocks = lock.mode === 'AccessExclusiveLock' ? 'reads and writes' : 'writes';
    add(
      'lock',
      lock.table,
      `holds ${lock.mode} on ${lock.table} for ~${round(lock.scaledHeldMs)} ms at live size (${size.liveRows} rows; ${round(lock.heldMs)} ms on ${size.scratchRows} rehearsal rows), over the ${context.lockBudgetMs} ms lock budget: ${blocks} on ${lock.table} wait that long. ` +
        'Build indexes concurrently (transaction: false), add constraints NOT VALID and validate them, and keep DDL out of long transactions.',
    );
  }
  for (const rewrite of rewrites) {
    if (!(rewrite.table in evidence.before.tables)) continue;
    const size = context.sizes.get(rewrite.table);
    add(
      'rewrite',
      rewrite.table,
      `rewrites table ${rewrite.table} (relfilenode ${rewrite.before} → ${rewrite.after}) under ACCESS EXCLUSIVE${size ? ` (${size.liveRows} live rows)` : ''}: reads and writes wait for the whole copy. ` +
        'Add the column without a volatile default and backfill in batches, or add a new column and migrate to it instead of changing the type.',
    );
  }
  for (const entry of classified) {
    if (entry.kind.kind !== 'dml' || (entry.statement.rows ?? 0) <= 1 || entry.scaledMs <= context.lockBudgetMs) continue;
    const table = entry.tables[0];
    if (table === undefined) continue;
    const size = context.sizes.get(table);
    const liveRows = size && size.scratchRows > 0 ? Math.round((entry.statement.rows ?? 0) * (size.liveRows / size.scratchRows)) : entry.statement.rows;
    add(
      'bulk-update',
      table,
      `${entry.kind.action}s ${entry.statement.rows} rows of ${table} in one statement (~${liveRows} at live size, ~${round(entry.scaledMs)} ms): writers of those rows wait for it, over the ${context.lockBudgetMs} ms lock budget. ` +
        'Move the backfill into a background migration with small batches.',
    );
  }

  const observed = reasons.reduce<OutageClass>((acc, reason) => (RANK[reason.outage] > RANK[acc] ? reason.outage : acc), 'none');
  const touchedTables = new Set(classified.flatMap((entry) => entry.tables));
  return {
    statements: classified.map((entry) => ({
      sql: entry.statement.sql,
      action: entry.kind.kind === 'ddl' || entry.kind.kind === 'dml' ? entry.kind.action : undefined,
      durationMs: round(entry.statement.durationMs),
      scaledDurationMs: round(entry.scaledMs),
      rows: entry.statement.rows,
      tables: entry.tables,
      error: entry.statement.error,
    })),
    locks: locks.map((lock) => ({ ...lock, heldMs: round(lock.heldMs), scaledHeldMs: round(lock.scaledHeldMs) })),
    rewrites,
    rowsTouched: classified.reduce((sum, entry) => sum + (entry.kind.kind === 'dml' ? (entry.statement.rows ?? 0) : 0), 0),
    scaledDurationMs: round(evidence.endMs - evidence.startMs + classified.reduce((sum, entry) => sum + entry.scaledMs - entry.statement.durationMs, 0)),
    scaled: !unscaled && [...touchedTables].every((table) => (context.sizes.get(table)?.scratchRows ?? 1) > 0 || (context.sizes.get(table)?.liveRows ?? 0) === 0),
    observed,
    reasons,
    liveWrites: [...new Set(liveWrites)],
  };
}

/**
 * What a step changed that the installed release's code cannot live with: a table or column
 * gone or renamed, a type changed, NOT NULL without a default on an existing column, or a new
 * NOT NULL column without a default that old inserts leave out.
 *
 * @example
 * ```ts
 * breakingChanges(before, after, (table, message) => console.log(table, message))
 * // assign column assign.name was renamed to title: the installed code still reads and writes assign.name …
 * ```
 */
export function breakingChanges(before: LiveSchema, after: LiveSchema, report: (table: string, message: string) => void): void {
  const newTables = Object.keys(after.tables).filter((name) => !(name in before.tables));
  for (const [name, table] of Object.entries(before.tables)) {
    const now = after.tables[name];
    if (!now) {
      const columns = table.columns.map((c) => c.name).join(',');
      const renamed = newTables.find((candidate) => after.tables[candidate]!.columns.map((c) => c.name).join(',') === columns);
      report(
        name,
        renamed
          ? `table ${name} was renamed to ${renamed}: the installed code still queries ${name}. Create the new table in a none step and drop the old one in a post (contract) step once no front runs the old code.`
          : `table ${name} was dropped: the installed code still queries it. Drop it in a post (contract) step, after every front runs code that no longer uses it.`,
      );
      continue;
    }
    const added = now.columns.filter((column) => !table.columns.some((old) => old.name === column.name));
    const claimed = new Set<string>();
    for (const column of table.columns) {
      const current = now.columns.find((c) => c.name === column.name);
      if (!current) {
        const renamed = added.find((candidate) => !claimed.has(candidate.name) && candidate.type === column.type);
        if (renamed) claimed.add(renamed.name);
        report(
          name,
          renamed
            ? `column ${name}.${column.name} was renamed to ${renamed.name}: the installed code still reads and writes ${name}.${column.name}. Add ${renamed.name} in a none step, copy in batches, and drop ${column.name} in a post (contract) step.`
            : `column ${name}.${column.name} was dropped: the installed code still reads and writes it. Drop it in a post (contract) step, after every front runs code that no longer uses it.`,
        );
        continue;
      }
      if (current.type !== column.type) {
        report(name, `column ${name}.${column.name} changed type from ${column.type} to ${current.type}: the installed code reads and writes the old type. Add a new column in a none step and migrate to it.`);
      }
      if (column.nullable && !current.nullable && current.default === null && !current.identity) {
        report(name, `column ${name}.${column.name} became NOT NULL without a default: the installed code's inserts that leave it out fail. Give it a default first, or make it NOT NULL in a post (contract) step.`);
      }
    }
    for (const column of added) {
      if (claimed.has(column.name) || column.nullable || column.default !== null || column.identity) continue;
      report(name, `new column ${name}.${column.name} is NOT NULL without a default: the installed code's inserts leave it out and fail. Give it a default, or make it nullable.`);
    }
  }
}
