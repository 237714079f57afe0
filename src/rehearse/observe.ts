import type { KyselyPlugin, LogEvent, QueryId } from 'kysely';
import pg from 'pg';

/**
 * What a rehearsal sees of a step: every statement it sent (through Kysely's `log` option,
 * with the rows each touched from a plugin), the table locks each statement takes by its
 * text, and the locks a second connection actually sees the step's backend hold.
 */

/** PostgreSQL's table lock modes, weakest first, as `pg_locks.mode` prints them. */
export const LOCK_MODES = [
  'AccessShareLock',
  'RowShareLock',
  'RowExclusiveLock',
  'ShareUpdateExclusiveLock',
  'ShareLock',
  'ShareRowExclusiveLock',
  'ExclusiveLock',
  'AccessExclusiveLock',
] as const;

export type LockMode = (typeof LOCK_MODES)[number];

/** Strength of a mode: ShareLock (4) and above block writes, AccessExclusiveLock (7) blocks reads. */
export function lockRank(mode: LockMode): number {
  return LOCK_MODES.indexOf(mode);
}

/** True for modes that block concurrent writes (ShareLock and stronger). */
export function blocksWrites(mode: LockMode): boolean {
  return lockRank(mode) >= lockRank('ShareLock');
}

export interface RecordedStatement {
  readonly sql: string;
  /** `performance.now()` when it was sent. */
  readonly startMs: number;
  readonly durationMs: number;
  /** Rows inserted, updated or deleted; undefined for other statements. */
  rows: number | undefined;
  readonly error: string | undefined;
}

/**
 * Records the statements of one Kysely instance while `recording` is on. Pass `logger` as
 * Kysely's `log` option and `plugin` in its `plugins`.
 *
 * @example
 * ```ts
 * const recorder = new StatementRecorder()
 * const db = new Kysely({ dialect, log: recorder.logger, plugins: [recorder.plugin] })
 * recorder.recording = true
 * await db.updateTable('assign').set({ grade: 0 }).execute()
 * recorder.take() // [{ sql: 'update "assign" set "grade" = $1', rows: 1000, durationMs: 1.4, … }]
 * ```
 */
export class StatementRecorder {
  recording = false;
  #statements: RecordedStatement[] = [];
  readonly #byQuery = new WeakMap<QueryId, RecordedStatement>();

  readonly logger = (event: LogEvent): void => {
    if (!this.recording) return;
    const end = performance.now();
    const statement: RecordedStatement = {
      sql: event.query.sql,
      startMs: end - event.queryDurationMillis,
      durationMs: event.queryDurationMillis,
      rows: undefined,
      error: event.level === 'error' ? (event.error instanceof Error ? event.error.message : String(event.error)) : undefined,
    };
    this.#statements.push(statement);
    this.#byQuery.set(event.query.queryId, statement);
  };

  // The log event comes first, then the result passes through the plugins with the same id.
  readonly plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      const statement = this.#byQuery.get(args.queryId);
      if (statement && args.result.numAffectedRows !== undefined) statement.rows = Number(args.result.numAffectedRows);
      return args.result;
    },
  };

  /** The statements recorded since the last call. */
  take(): RecordedStatement[] {
    const taken = this.#statements;
    this.#statements = [];
    return taken;
  }
}

/** One table lock that a statement takes, read from its text. */
export interface StatementLock {
  /** Schema named in the statement, if it qualified the table. */
  readonly schema: string | undefined;
  readonly table: string;
  readonly mode: LockMode;
}

export type StatementClass =
  | { readonly kind: 'begin' | 'commit' | 'rollback' | 'savepoint' | 'read' }
  | {
      readonly kind: 'ddl' | 'dml';
      /** `update`, `create index`, `alter table … validate constraint`, … for messages. */
      readonly action: string;
      readonly locks: readonly StatementLock[];
      /** Its work grows with the table (a scan, a build, a rewrite); otherwise it is catalog-only. */
      readonly scans: boolean;
      /** For `alter table … alter column … set not null`: scans unless a validated check covers it. */
      readonly setNotNull?: boolean;
      /** For `validate constraint` and checks added valid: later `set not null` needs no scan. */
      readonly provesNotNull?: boolean;
    };

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const QNAME = String.raw`(${IDENT})(?:\s*\.\s*(${IDENT}))?`;

function unquote(identifier: string): string {
  return identifier.startsWith('"') ? identifier.slice(1, -1).replaceAll('""', '"') : identifier.toLowerCase();
}

function qualified(first: string | undefined, second: string | undefined): { schema: string | undefined; table: string } {
  return second === undefined ? { schema: undefined, table: unquote(first!) } : { schema: unquote(first!), table: unquote(second) };
}

const LOCK_WORDS: Record<string, LockMode> = {
  'access share': 'AccessShareLock',
  'row share': 'RowShareLock',
  'row exclusive': 'RowExclusiveLock',
  'share update exclusive': 'ShareUpdateExclusiveLock',
  share: 'ShareLock',
  'share row exclusive': 'ShareRowExclusiveLock',
  exclusive: 'ExclusiveLock',
  'access exclusive': 'AccessExclusiveLock',
};

/** Statement text without comments, on one line. */
function normalize(text: string): string {
  return text.replace(/--[^\n]*/g, ' ').replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * Which table locks a statement takes, from its text (PostgreSQL's documented lock table,
 * "Explicit Locking"). `indexTables` maps index names to their tables, for DROP INDEX.
 *
 * @example
 * ```ts
 * classifyStatement('create index "assign_duedate_ix" on "assign" ("duedate")', new Map())
 * // { kind: 'ddl', action: 'create index', locks: [{ table: 'assign', mode: 'ShareLock' }], scans: true }
 * ```
 */
export function classifyStatement(text: string, indexTables: ReadonlyMap<string, string>): StatementClass {
  const statement = normalize(text);
  const lower = statement.toLowerCase();
  if (/^(begin|start transaction)\b/.test(lower)) return { kind: 'begin' };
  if (/^(commit|end)\b/.test(lower)) return { kind: 'commit' };
  if (/^rollback\s+(work\s+|transaction\s+)?to\b/.test(lower) || /^(savepoint|release)\b/.test(lower)) return { kind: 'savepoint' };
  if (/^(rollback|abort)\b/.test(lower)) return { kind: 'rollback' };

  let match = new RegExp(String.raw`^alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?${QNAME}\s*(.*)$`, 'i').exec(statement);
  if (match) {
    const target = qualified(match[1], match[2]);
    const rest = (match[3] ?? '').toLowerCase();
    const notValid = /\bnot\s+valid\b/.test(rest);
    if (/^validate\s+constraint\b/.test(rest)) {
      return { kind: 'ddl', action: 'alter table … validate constraint', locks: [{ ...target, mode: 'ShareUpdateExclusiveLock' }], scans: true, provesNotNull: true };
    }
    const references = new RegExp(String.raw`\breferences\s+${QNAME}`, 'i').exec(match[3] ?? '');
    if (references && /\bforeign\s+key\b/.test(rest)) {
      const other = qualified(references[1], references[2]);
      return {
        kind: 'ddl',
        action: `alter table … add foreign key${notValid ? ' not valid' : ''}`,
        locks: [{ ...target, mode: 'ShareRowExclusiveLock' }, { ...other, mode: 'ShareRowExclusiveLock' }],
        scans: !notValid,
      };
    }
    if (/\badd\s+(constraint\s+\S+\s+)?check\b/.test(rest)) {
      return { kind: 'ddl', action: `alter table … add check${notValid ? ' not valid' : ''}`, locks: [{ ...target, mode: 'AccessExclusiveLock' }], scans: !notValid, provesNotNull: !notValid };
    }
    if (/\bset\s+not\s+null\b/.test(rest)) {
      return { kind: 'ddl', action: 'alter table … set not null', locks: [{ ...target, mode: 'AccessExclusiveLock' }], scans: true, setNotNull: true };
    }
    if (/^(set|reset)\s*\(/.test(rest) || /^(enable|disable)\s+trigger\b/.test(rest)) {
      return { kind: 'ddl', action: 'alter table … set', locks: [{ ...target, mode: 'ShareRowExclusiveLock' }], scans: false };
    }
    return { kind: 'ddl', action: `alter table … ${rest.split(' ').slice(0, 2).join(' ')}`, locks: [{ ...target, mode: 'AccessExclusiveLock' }], scans: false };
  }

  match = new RegExp(String.raw`^create\s+(unique\s+)?index\s+(concurrently\s+)?(?:if\s+not\s+exists\s+)?(?:${IDENT}\s+)?on\s+(?:only\s+)?${QNAME}`, 'i').exec(statement);
  if (match) {
    const concurrently = match[2] !== undefined;
    return {
      kind: 'ddl',
      action: `create ${match[1] ? 'unique ' : ''}index${concurrently ? ' concurrently' : ''}`,
      locks: [{ ...qualified(match[3], match[4]), mode: concurrently ? 'ShareUpdateExclusiveLock' : 'ShareLock' }],
      scans: true,
    };
  }

  match = new RegExp(String.raw`^drop\s+index\s+(concurrently\s+)?(?:if\s+exists\s+)?${QNAME}`, 'i').exec(statement);
  if (match) {
    const index = qualified(match[2], match[3]);
    const table = indexTables.get(index.table);
    const mode: LockMode = match[1] ? 'ShareUpdateExclusiveLock' : 'AccessExclusiveLock';
    return { kind: 'ddl', action: `drop index${match[1] ? ' concurrently' : ''}`, locks: table ? [{ schema: index.schema, table, mode }] : [], scans: false };
  }

  match = new RegExp(String.raw`^(drop\s+table|truncate(?:\s+table)?)\s+(?:if\s+exists\s+)?(?:only\s+)?${QNAME}`, 'i').exec(statement);
  if (match) {
    return { kind: 'ddl', action: match[1]!.toLowerCase().replace(/\s+/g, ' '), locks: [{ ...qualified(match[2], match[3]), mode: 'AccessExclusiveLock' }], scans: false };
  }

  match = new RegExp(String.raw`^lock\s+(?:table\s+)?(?:only\s+)?${QNAME}(?:\s+in\s+([a-z ]+?)\s+mode)?`, 'i').exec(statement);
  if (match) {
    const mode = LOCK_WORDS[(match[3] ?? 'access exclusive').toLowerCase().replace(/\s+/g, ' ')] ?? 'AccessExclusiveLock';
    return { kind: 'ddl', action: 'lock table', locks: [{ ...qualified(match[1], match[2]), mode }], scans: false };
  }

  match = new RegExp(String.raw`^(reindex|cluster|vacuum\s+full)\s+(?:\(.*?\)\s+)?(?:table\s+)?(concurrently\s+)?${QNAME}`, 'i').exec(statement);
  if (match) {
    const mode: LockMode = match[2] ? 'ShareUpdateExclusiveLock' : 'AccessExclusiveLock';
    return { kind: 'ddl', action: match[1]!.toLowerCase(), locks: [{ ...qualified(match[3], match[4]), mode }], scans: true };
  }

  // DML, also inside a WITH: the first table it writes.
  match = new RegExp(String.raw`(?:^|\s|\()(update(?:\s+only)?|delete\s+from(?:\s+only)?|insert\s+into|merge\s+into)\s+${QNAME}`, 'i').exec(statement);
  if (match && (/^(update|delete|insert|merge|with)\b/i.test(statement))) {
    const action = match[1]!.toLowerCase().split(/\s+/)[0]!;
    return { kind: 'dml', action, locks: [{ ...qualified(match[2], match[3]), mode: 'RowExclusiveLock' }], scans: true };
  }
  return { kind: 'read' };
}

/** One sample of a lock the watched backend holds (or waits for) on a table. */
export interface LockSample {
  readonly atMs: number;
  readonly schema: string;
  readonly table: string;
  readonly mode: LockMode;
  readonly granted: boolean;
}

/**
 * Polls `pg_locks` from a second connection for the table locks of one backend, every
 * `intervalMs`. It sees what the statement text does not say (a DO block, a function), for
 * statements that take at least a moment.
 *
 * @example
 * ```ts
 * const monitor = await LockMonitor.connect(url)
 * monitor.start(pid)
 * await step.run(ctx)
 * const samples = await monitor.stop()
 * await monitor.close()
 * ```
 */
export class LockMonitor {
  readonly #client: pg.Client;
  readonly #intervalMs: number;
  #samples: LockSample[] = [];
  #loop: Promise<void> | undefined;
  #running = false;
  #failure: unknown;

  private constructor(client: pg.Client, intervalMs: number) {
    this.#client = client;
    this.#intervalMs = intervalMs;
  }

  static async connect(connectionString: string, intervalMs = 5): Promise<LockMonitor> {
    const client = new pg.Client({ connectionString, application_name: 'outageless-rehearse-monitor' });
    client.on('error', () => {});
    await client.connect();
    return new LockMonitor(client, intervalMs);
  }

  start(pid: number): void {
    this.#samples = [];
    this.#running = true;
    this.#failure = undefined;
    this.#loop = (async () => {
      while (this.#running) {
        try {
          const { rows } = await this.#client.query<{ schema: string; table: string; mode: LockMode; granted: boolean }>(
            `select n.nspname::text as schema, c.relname::text as table, l.mode, l.granted
             from pg_catalog.pg_locks l
               join pg_catalog.pg_class c on c.oid = l.relation
               join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             where l.pid = $1 and l.locktype = 'relation' and c.relkind in ('r', 'p')`,
            [pid],
          );
          const atMs = performance.now();
          for (const row of rows) this.#samples.push({ atMs, ...row });
        } catch (error) {
          this.#failure = error;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.#intervalMs));
      }
    })();
  }

  /** Stops polling and returns the samples since `start`. */
  async stop(): Promise<LockSample[]> {
    this.#running = false;
    await this.#loop;
    if (this.#failure) throw this.#failure;
    return this.#samples;
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  async close(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await this.#client.end().catch(() => {});
  }
}

/** Thrown, before anything is sent, for a statement that would reach past the scratch copy. */
export class OutsideScratchError extends Error {
  readonly relation: string;
  readonly sql: string;

  constructor(relation: string, sqlText: string) {
    super(`refused to send a statement that names ${relation} outside the scratch copy: ${sqlText.slice(0, 200)}`);
    this.name = 'OutsideScratchError';
    this.relation = relation;
    this.sql = sqlText;
  }
}

const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_temp', 'pg_toast']);

/**
 * Why `text` must not run on the step connection of a rehearsal, or undefined when it may:
 * it names a table of the live schema (or writes to any other schema) explicitly, or moves
 * the search path off the scratch schema. Checked before the statement is sent, because an
 * online step runs outside a transaction and could not be rolled back.
 *
 * @example
 * ```ts
 * outsideScratch('update public.assign set grade = 0', 'public', 'outageless_rehearse_1a2b') // 'public.assign'
 * outsideScratch('update assign set grade = 0', 'public', 'outageless_rehearse_1a2b')        // undefined
 * ```
 */
export function outsideScratch(text: string, liveSchema: string, scratchSchema: string): string | undefined {
  const statement = normalize(text);
  if (/\bsearch_path\b/i.test(statement) || /^set\s+schema\b/i.test(statement)) return 'the search path';
  const escape = (value: string) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const names = [`"${escape(liveSchema.replaceAll('"', '""'))}"`];
  if (/^[a-z_][a-z0-9_$]*$/.test(liveSchema)) names.push(`(?<![A-Za-z0-9_$"])${escape(liveSchema)}`);
  const qualified = new RegExp(String.raw`(?:${names.join('|')})\s*\.\s*(${IDENT})`, 'i').exec(statement);
  if (qualified) return `${liveSchema}.${unquote(qualified[1]!)}`;
  const kind = classifyStatement(statement, new Map());
  if (kind.kind === 'ddl' || kind.kind === 'dml') {
    for (const lock of kind.locks) {
      if (lock.schema !== undefined && lock.schema !== scratchSchema && !SYSTEM_SCHEMAS.has(lock.schema)) return `${lock.schema}.${lock.table}`;
    }
  }
  return undefined;
}
