/**
 * Acceptance: every bad input gets its typed error, exit code 1, and leaves the database
 * byte-for-byte as it was.
 *
 * Each database kind (PostgreSQL, embedded PGlite) gets one site: release 1 is installed, then
 * release 2 code is deployed, so a real upgrade is pending and a run that wrongly went ahead
 * would change the database. Each case breaks the code in one way, snapshots the database,
 * runs `outageless upgrade`, and checks the printed error (code, file, component) and that the
 * snapshot is unchanged. Release 2 is redeployed after every case.
 *
 * The snapshot before a run is the one taken after the previous run (or after the install):
 * between the two the test only edits files, and opening PGlite for a snapshot costs a second.
 * The two database kinds run side by side (separate sites and databases); the cases of one kind
 * run in order, since they share a site. PGlite runs the cases where the database takes part
 * (`bothDatabases`); the rest are found in the code before it is opened, alike for both.
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, embeddedDatabaseUrl, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, type CliResult, type SiteDir } from '../support/sites.ts';

// ---------------------------------------------------------------------------------------------
// Database snapshots
// ---------------------------------------------------------------------------------------------

type Row = Record<string, unknown>;
type Query = (text: string) => Promise<Row[]>;

/** Everything in the public schema: tables, columns, indexes, constraints, sequences and rows. */
async function dump(query: Query): Promise<unknown> {
  const tables = (await query(`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`)).map((row) => String(row.table_name));
  const columns = await query(`
    select table_name, column_name, ordinal_position, data_type, character_maximum_length,
           numeric_precision, numeric_scale, is_nullable, column_default
    from information_schema.columns where table_schema = 'public' order by table_name, ordinal_position`);
  const indexes = await query(`select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by tablename, indexname`);
  const constraints = await query(`
    select conrelid::regclass::text as table_name, conname, pg_get_constraintdef(oid) as definition
    from pg_constraint where connamespace = 'public'::regnamespace order by 1, 2`);
  const sequences = await query(`select sequencename, last_value from pg_sequences where schemaname = 'public' order by sequencename`);
  const rows: Record<string, Row[]> = {};
  for (const table of tables) {
    // Ordering by the row's text form orders by every column, json ones included.
    rows[table] = await query(`select * from public."${table.replaceAll('"', '""')}" as r order by r::text`);
  }
  // One plain-JSON form for both drivers' value types (bigint, Date, Buffer/Uint8Array).
  const normalized = JSON.stringify({ tables, columns, indexes, constraints, sequences, rows }, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
    if (value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
      return `\\x${Buffer.from((value as { data: number[] }).data).toString('hex')}`;
    }
    return value;
  });
  return JSON.parse(normalized) as unknown;
}

const run = promisify(execFile);
const PG_DUMP = process.env.PG_DUMP ?? 'pg_dump';

/**
 * pg_dump's own text, once with --schema-only and once with --data-only: every object and
 * row in every schema, byte for byte. The `\restrict` lines newer pg_dump releases print carry
 * a random key per run, so they are dropped.
 */
async function pgDump(url: string, mode: '--schema-only' | '--data-only'): Promise<string> {
  const { stdout } = await run(PG_DUMP, [mode, '--no-password', url], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
}

async function snapshotPostgres(url: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const catalog = await dump(async (text) => (await client.query<Row>(text)).rows);
    return { catalog, schema: await pgDump(url, '--schema-only'), data: await pgDump(url, '--data-only') };
  } finally {
    await client.end();
  }
}

/** The CLI has exited (and released the directory) whenever this runs. */
async function snapshotPglite(dir: string): Promise<unknown> {
  const db = await PGlite.create(dir);
  try {
    return await dump(async (text) => (await db.query<Row>(text)).rows);
  } finally {
    await db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// What the CLI printed
// ---------------------------------------------------------------------------------------------

interface PrintedError {
  code?: string;
  message?: string;
  component?: string;
  step?: string;
  file?: string;
  field?: string;
  fix?: string;
}

/** Parses `CODE: message` and the `  key: value` lines after it (README, "Exit codes and errors"). */
function parseError(stderr: string): PrintedError {
  const lines = stderr.split('\n');
  const start = lines.findIndex((line) => /^OUTAGELESS_ERR_[A-Z_]+: /.test(line));
  if (start < 0) return {};
  const [, code, message] = /^(OUTAGELESS_ERR_[A-Z_]+): (.*)$/.exec(lines[start]!)!;
  const printed: PrintedError = { code, message };
  for (const line of lines.slice(start + 1)) {
    const match = /^ {2}(component|step|file|field|fix): (.*)$/.exec(line);
    if (!match) break;
    printed[match[1] as 'component' | 'step' | 'file' | 'field' | 'fix'] = match[2];
  }
  return printed;
}

// ---------------------------------------------------------------------------------------------
// Bad edits
// ---------------------------------------------------------------------------------------------

type Edit = (site: SiteDir) => Promise<void>;

const ASSIGN_VERSION = 'plugins/mod/assign/version.ts';
const ASSIGN_UPGRADE = 'plugins/mod/assign/db/upgrade.ts';

/** Replaces `from` in a file of the deployed release 2; fails loudly if it is not there. */
const replace = (path: string, from: string | RegExp, to: string): Edit => (site) =>
  site.edit(path, (text) => {
    const next = text.replace(from, to);
    if (next === text) throw new Error(`test edit did not apply: ${String(from)} not found in ${path}`);
    return next;
  });

const both = (...edits: Edit[]): Edit => async (site) => {
  for (const edit of edits) await edit(site);
};

/** Adds a line to mod_assign's defineVersion({...}), after `requires`. */
const assignManifestLine = (line: string): Edit => replace(ASSIGN_VERSION, '  requires: 2026010100,\n', `  requires: 2026010100,\n  ${line}\n`);

/** A no-op step for mod_assign's db/upgrade.ts (release 2 has one step: assign_add_duedate, 2026020100). */
const step = (version: number, id: string) => `{ version: ${version}, id: '${id}', outage: 'none', async run() {} }`;
const stepBefore = (version: number, id: string): Edit => replace(ASSIGN_UPGRADE, '  steps: [\n', `  steps: [\n    ${step(version, id)},\n`);
const stepAfter = (version: number, id: string): Edit => replace(ASSIGN_UPGRADE, '\n  ],\n});', `\n    ${step(version, id)},\n  ],\n});`);

const EXTRA_VERSION = 'plugins/local/extra/version.ts';
const EXTRA_SCHEMA = 'plugins/local/extra/db/schema.ts';
const EXTRA_UPGRADE = 'plugins/local/extra/db/upgrade.ts';

/** A new component local_extra (installed by the pending upgrade) with one table of the given columns and keys. */
const extraComponent = (table: string, body: string): Edit => both(
  (site) => site.write(EXTRA_VERSION, versionFile('local_extra', 2026020100)),
  (site) => site.write(EXTRA_SCHEMA, [
    "import { defineSchema } from 'outageless';",
    '',
    'export default defineSchema({',
    `  tables: { ${table}: { ${body} } },`,
    '});',
    '',
  ].join('\n')),
);
/** local_extra's table with `id` and one more column. */
const extraColumn = (column: string): Edit =>
  extraComponent('local_extra_item', `columns: { id: { type: 'bigint', autoIncrement: true }, ${column} }, primaryKey: ['id']`);

/** Adds a metadata hook to mod_assign's defineUpgrade({...}). */
const assignMetadata = (hook: string): Edit => replace(ASSIGN_UPGRADE, '\n  ],\n});', `\n  ],\n  metadata: ${hook},\n});`);

const versionFile = (component: string, version: number, extra = '') =>
  `import { defineVersion } from 'outageless';\n\nexport default defineVersion({ component: '${component}', version: ${version}, requires: 2026010100${extra} });\n`;

interface BadInput {
  readonly name: string;
  readonly edit: Edit;
  readonly code: string;
  /** The exact relative path the error names. */
  readonly file: string;
  /** The component the error names; undefined where the input is not a component at all. */
  readonly component: string | undefined;
  readonly field?: string;
  readonly step?: string;
  /** Flags instead of the default `--non-interactive`. */
  readonly flags?: readonly string[];
  /** Also run with --json and check the JSON error document on stdout. */
  readonly json?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /** A part of the `fix:` line, where the fix itself is the point (a suggested key, say). */
  readonly fix?: string;
  /**
   * Also run on the embedded database. Most bad input is found in the code before the
   * database is opened, the same way for both kinds, so PGlite (whose every CLI start costs a
   * WebAssembly boot) runs the cases where the database takes part: reading what is installed,
   * checking defaults and the site-wide schema, timeouts while it is open, the JSON output.
   */
  readonly bothDatabases?: true;
}

/** Short limits for the cases that hang on purpose. */
const SHORT_LIMIT = { OUTAGELESS_LOAD_TIMEOUT_MS: '1500' };

const cases: readonly BadInput[] = [
  {
    name: 'missing version',
    edit: replace(ASSIGN_VERSION, /^ {2}version: 2026020100,\n/m, ''),
    code: 'OUTAGELESS_ERR_MANIFEST_INVALID', file: ASSIGN_VERSION, component: 'mod_assign', field: 'version',
  },
  {
    name: 'non-integer version (2026020100.5)',
    edit: replace(ASSIGN_VERSION, 'version: 2026020100,', 'version: 2026020100.5,'),
    code: 'OUTAGELESS_ERR_MANIFEST_INVALID', file: ASSIGN_VERSION, component: 'mod_assign', field: 'version',
  },
  {
    name: "version given as a string ('2026020100')",
    edit: replace(ASSIGN_VERSION, 'version: 2026020100,', "version: '2026020100' as unknown as number,"),
    code: 'OUTAGELESS_ERR_MANIFEST_INVALID', file: ASSIGN_VERSION, component: 'mod_assign', field: 'version',
  },
  {
    name: 'component name not matching its directory',
    edit: replace(ASSIGN_VERSION, "component: 'mod_assign',", "component: 'mod_assignment',"),
    code: 'OUTAGELESS_ERR_COMPONENT_NAME', file: ASSIGN_VERSION, component: 'mod_assign', field: 'component',
  },
  {
    name: 'duplicate component (subplugin type "block" of mod_assign claims block_news again)',
    edit: both(
      replace(ASSIGN_VERSION, "subplugins: { assignsubmission: 'submission' },", "subplugins: { assignsubmission: 'submission', block: 'blocks' },"),
      (site) => site.write('plugins/mod/assign/blocks/news/version.ts', versionFile('block_news', 2026020100)),
    ),
    code: 'OUTAGELESS_ERR_DUPLICATE_COMPONENT', file: 'plugins/mod/assign/blocks/news', component: 'block_news',
  },
  {
    name: 'duplicate step version',
    edit: stepAfter(2026020100, 'assign_second_step'),
    code: 'OUTAGELESS_ERR_DUPLICATE_STEP', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'version', step: '2026020100',
  },
  {
    name: 'duplicate step id (--json)',
    edit: stepBefore(2026010200, 'assign_add_duedate'),
    code: 'OUTAGELESS_ERR_DUPLICATE_STEP', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'id', step: 'assign_add_duedate',
    json: true,
  },
  {
    name: "step version above the component's version",
    edit: stepAfter(2026030100, 'assign_from_the_future'),
    code: 'OUTAGELESS_ERR_STEP_ABOVE_VERSION', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'version', step: 'assign_from_the_future',
  },
  {
    name: 'steps out of order',
    edit: stepAfter(2026010200, 'assign_listed_late'),
    code: 'OUTAGELESS_ERR_STEP_ORDER', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'steps', step: 'assign_listed_late',
  },
  {
    name: "requires above core's version",
    edit: replace(ASSIGN_VERSION, 'requires: 2026010100,', 'requires: 2026030100,'),
    code: 'OUTAGELESS_ERR_REQUIRES_CORE', file: ASSIGN_VERSION, component: 'mod_assign', field: 'requires',
  },
  {
    name: 'missing dependency',
    edit: assignManifestLine('dependencies: { mod_forum: 2026010100 },'),
    code: 'OUTAGELESS_ERR_DEPENDENCY_MISSING', file: ASSIGN_VERSION, component: 'mod_assign', field: 'dependencies.mod_forum',
  },
  {
    name: 'too-old dependency',
    edit: assignManifestLine('dependencies: { mod_quiz: 2026030100 },'),
    code: 'OUTAGELESS_ERR_DEPENDENCY_TOO_OLD', file: ASSIGN_VERSION, component: 'mod_assign', field: 'dependencies.mod_quiz',
  },
  {
    // local_reports (2026010100) already depends on mod_assign 2026010100; both exist at those versions.
    name: 'dependency cycle mod_assign <-> local_reports (--json)',
    edit: assignManifestLine('dependencies: { local_reports: 2026010100 },'),
    code: 'OUTAGELESS_ERR_DEPENDENCY_CYCLE', file: ASSIGN_VERSION, component: 'mod_assign', field: 'dependencies',
    json: true,
  },
  {
    name: 'unknown plugin type directory (plugins/widget/foo)',
    edit: (site) => site.write('plugins/widget/foo/version.ts', versionFile('widget_foo', 2026020100)),
    code: 'OUTAGELESS_ERR_UNKNOWN_PLUGIN_TYPE', file: 'plugins/widget', component: undefined,
  },
  {
    name: "syntax error in a plugin's version.ts (--json)", bothDatabases: true,
    edit: replace(ASSIGN_VERSION, "release: '1.1',", "release: '1.1',,"),
    code: 'OUTAGELESS_ERR_LOAD_FAILED', file: ASSIGN_VERSION, component: 'mod_assign',
    json: true,
  },
  {
    name: 'db/upgrade.ts that throws at import time',
    edit: replace(ASSIGN_UPGRADE, '/** mod_assign upgrade steps. */', "throw new Error('broken at import');\n/** mod_assign upgrade steps. */"),
    code: 'OUTAGELESS_ERR_LOAD_FAILED', file: ASSIGN_UPGRADE, component: 'mod_assign',
  },
  {
    name: "downgrade of one plugin (block_news code older than installed 2026010100)", bothDatabases: true,
    edit: replace('plugins/block/news/version.ts', 'version: 2026020100,', 'version: 2025120100,'),
    code: 'OUTAGELESS_ERR_DOWNGRADE', file: 'plugins/block/news/version.ts', component: 'block_news', field: 'version',
  },
  {
    name: 'invalid db/schema.ts of a new component', bothDatabases: true,
    edit: both(
      (site) => site.write('plugins/local/extra/version.ts', versionFile('local_extra', 2026020100)),
      (site) => site.write('plugins/local/extra/db/schema.ts', [
        "import { defineSchema } from 'outageless';",
        '',
        'export default defineSchema({',
        "  tables: { local_extra_item: { columns: { id: { type: 'bigint', autoIncrement: true }, body: { type: 'blob' as 'text' } }, primaryKey: ['id'] } },",
        '});',
        '',
      ].join('\n')),
    ),
    code: 'OUTAGELESS_ERR_SCHEMA_INVALID', file: 'plugins/local/extra/db/schema.ts', component: 'local_extra',
    field: 'tables.local_extra_item.columns.body.type',
  },
  {
    name: 'upgrade --is-pending with a bad manifest (--json)', bothDatabases: true,
    edit: replace(ASSIGN_VERSION, "component: 'mod_assign',", "component: 'mod_assignment',"),
    code: 'OUTAGELESS_ERR_COMPONENT_NAME', file: ASSIGN_VERSION, component: 'mod_assign', field: 'component',
    flags: ['--is-pending'], json: true,
  },
  {
    name: 'upgrade --is-maintenance-required with a bad upgrade step', bothDatabases: true,
    edit: stepAfter(2026030100, 'assign_from_the_future'),
    code: 'OUTAGELESS_ERR_STEP_ABOVE_VERSION', file: ASSIGN_UPGRADE, component: 'mod_assign', step: 'assign_from_the_future',
    flags: ['--is-maintenance-required'],
  },

  // Issue 11, item 4: a missing file and a missing default export are different errors.
  {
    name: 'db/upgrade.ts without a default export',
    edit: replace(ASSIGN_UPGRADE, 'export default defineUpgrade(', 'export const upgrade = defineUpgrade('),
    code: 'OUTAGELESS_ERR_NO_DEFAULT_EXPORT', file: ASSIGN_UPGRADE, component: 'mod_assign',
  },
  {
    name: 'db/schema.ts of a new component without a default export',
    edit: both(
      extraColumn("body: { type: 'text' }"),
      replace(EXTRA_SCHEMA, 'export default defineSchema(', 'export const schema = defineSchema('),
    ),
    code: 'OUTAGELESS_ERR_NO_DEFAULT_EXPORT', file: EXTRA_SCHEMA, component: 'local_extra',
  },
  {
    name: 'a component directory without version.ts',
    edit: (site) => site.write(EXTRA_SCHEMA, "import { defineSchema } from 'outageless';\nexport default defineSchema({ tables: {} });\n"),
    code: 'OUTAGELESS_ERR_FILE_MISSING', file: EXTRA_VERSION, component: 'local_extra',
  },

  // Item 5: metadata() is validated like everything else.
  {
    name: "metadata() asking for maintenance 'full', with --no-maintenance",
    edit: assignMetadata("() => ({ maintenance: 'full' }) as never"),
    code: 'OUTAGELESS_ERR_METADATA_INVALID', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'maintenance',
    flags: ['--non-interactive', '--no-maintenance'],
  },
  {
    name: 'metadata() returning a string',
    edit: assignMetadata("() => 'none' as never"),
    code: 'OUTAGELESS_ERR_METADATA_INVALID', file: ASSIGN_UPGRADE, component: 'mod_assign',
  },
  {
    name: 'metadata() returning null (--json)',
    edit: assignMetadata('() => null as never'),
    code: 'OUTAGELESS_ERR_METADATA_INVALID', file: ASSIGN_UPGRADE, component: 'mod_assign',
    json: true,
  },
  {
    name: 'metadata() that throws', bothDatabases: true,
    edit: assignMetadata("() => { throw new Error('metadata broke') }"),
    code: 'OUTAGELESS_ERR_METADATA_FAILED', file: ASSIGN_UPGRADE, component: 'mod_assign',
  },

  // Item 6: unknown keys are refused everywhere, with the nearest known key.
  {
    name: 'unknown key in version.ts (maintenence)',
    edit: assignManifestLine('maintenence: { disableable: true },'),
    code: 'OUTAGELESS_ERR_MANIFEST_INVALID', file: ASSIGN_VERSION, component: 'mod_assign', field: 'maintenence',
    fix: 'Did you mean `maintenance`?',
  },
  {
    name: 'unknown key in a step (transation)',
    edit: replace(ASSIGN_UPGRADE, "      outage: 'none',\n", "      outage: 'none',\n      transation: false,\n"),
    code: 'OUTAGELESS_ERR_MANIFEST_INVALID', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'steps[0].transation',
    fix: 'Did you mean `transaction`?',
  },
  {
    name: 'unknown key in defineUpgrade (metdata)',
    edit: replace(ASSIGN_UPGRADE, '\n  ],\n});', "\n  ],\n  metdata: () => ({ maintenance: 'none' }),\n} as never);"),
    code: 'OUTAGELESS_ERR_MANIFEST_INVALID', file: ASSIGN_UPGRADE, component: 'mod_assign', field: 'metdata',
    fix: 'Did you mean `metadata`?',
  },

  // Item 7: a default is one SQL expression, checked before anything is written.
  {
    name: 'default { sql } that smuggles statements in (drops another component\'s table)', bothDatabases: true,
    edit: extraColumn(`n: { type: 'integer', default: { sql: '0); drop table assign_submission; create table zeta_x (a int' } }`),
    code: 'OUTAGELESS_ERR_DEFAULT_INVALID', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.local_extra_item.columns.n.default',
  },
  {
    name: 'default { sql } with a function that does not exist',
    edit: extraColumn("n: { type: 'integer', default: { sql: 'no_such_function()' } }"),
    code: 'OUTAGELESS_ERR_DEFAULT_INVALID', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.local_extra_item.columns.n.default',
  },
  {
    name: 'default { sql } of the wrong type for its column', bothDatabases: true,
    edit: extraColumn(`n: { type: 'integer', default: { sql: "'abc'" } }`),
    code: 'OUTAGELESS_ERR_DEFAULT_INVALID', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.local_extra_item.columns.n.default',
  },

  // Item 8: the whole site's schema is checked before the first write.
  {
    name: 'foreign key to a table no component declares',
    edit: extraComponent('local_extra_item', "columns: { id: { type: 'bigint', autoIncrement: true }, ref: { type: 'bigint' } }, primaryKey: ['id'], foreignKeys: [{ columns: ['ref'], references: { table: 'no_such_table', columns: ['id'] } }]"),
    code: 'OUTAGELESS_ERR_FOREIGN_KEY_TARGET', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.local_extra_item.foreignKeys[0].references.table',
  },
  {
    name: "foreign key to a missing column of another component's table", bothDatabases: true,
    edit: extraComponent('local_extra_item', "columns: { id: { type: 'bigint', autoIncrement: true }, ref: { type: 'bigint' } }, primaryKey: ['id'], foreignKeys: [{ columns: ['ref'], references: { table: 'assign', columns: ['no_such_column'] } }]"),
    code: 'OUTAGELESS_ERR_FOREIGN_KEY_TARGET', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.local_extra_item.foreignKeys[0].references.columns[0]',
  },
  {
    name: 'the same table declared by two components', bothDatabases: true,
    edit: extraComponent('assign', "columns: { id: { type: 'bigint', autoIncrement: true } }, primaryKey: ['id']"),
    code: 'OUTAGELESS_ERR_TABLE_CONFLICT', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.assign',
  },
  {
    name: 'a non-integer literal as an integer default',
    edit: extraColumn("n: { type: 'integer', default: '1.5' }"),
    code: 'OUTAGELESS_ERR_DEFAULT_INVALID', file: EXTRA_SCHEMA, component: 'local_extra', field: 'tables.local_extra_item.columns.n.default',
  },

  // Item 9: loads and metadata() are time-boxed.
  {
    name: 'db/upgrade.ts whose import never finishes (top-level await)', bothDatabases: true,
    edit: replace(ASSIGN_UPGRADE, '/** mod_assign upgrade steps. */', 'await new Promise(() => {});\n/** mod_assign upgrade steps. */'),
    code: 'OUTAGELESS_ERR_LOAD_TIMEOUT', file: ASSIGN_UPGRADE, component: 'mod_assign',
    env: SHORT_LIMIT,
  },
  {
    name: 'db/upgrade.ts with an endless loop at import',
    edit: replace(ASSIGN_UPGRADE, '/** mod_assign upgrade steps. */', 'for (;;) {}\n/** mod_assign upgrade steps. */'),
    code: 'OUTAGELESS_ERR_LOAD_TIMEOUT', file: ASSIGN_UPGRADE, component: 'mod_assign',
    env: SHORT_LIMIT,
  },
  {
    name: 'metadata() that never resolves',
    edit: assignMetadata('() => new Promise(() => {})'),
    code: 'OUTAGELESS_ERR_METADATA_TIMEOUT', file: ASSIGN_UPGRADE, component: 'mod_assign',
    env: SHORT_LIMIT,
  },

  // Item 10: a new component's db/upgrade.ts is validated at its install too.
  {
    name: "a new component's broken db/upgrade.ts (step above its version)",
    edit: both(
      extraColumn("body: { type: 'text' }"),
      (site) => site.write(EXTRA_UPGRADE, [
        "import { defineUpgrade } from 'outageless';",
        '',
        `export default defineUpgrade({ steps: [${step(2026030100, 'extra_from_the_future')}] });`,
        '',
      ].join('\n')),
    ),
    code: 'OUTAGELESS_ERR_STEP_ABOVE_VERSION', file: EXTRA_UPGRADE, component: 'local_extra', step: 'extra_from_the_future',
  },

  // Item 11: a subplugin directory stays inside its parent.
  {
    name: "subplugin directory '../..' outside its parent component",
    edit: replace(ASSIGN_VERSION, "subplugins: { assignsubmission: 'submission' },", "subplugins: { assignsubmission: '../..' },"),
    code: 'OUTAGELESS_ERR_SUBPLUGIN_DIR', file: ASSIGN_VERSION, component: 'mod_assign', field: 'subplugins.assignsubmission',
  },
];

// ---------------------------------------------------------------------------------------------
// The suites
// ---------------------------------------------------------------------------------------------

/** The cases of one database kind share a site, so they run one after another. */
const inOrder = { concurrent: false } as const;

for (const kind of ['postgres', 'pglite'] as const) {
  const suite = kind === 'postgres' ? describe.skipIf(!postgresAvailable) : describe;

  suite(`bad input on ${kind}: typed error, exit 1, database untouched`, { concurrent: true }, () => {
    let site: SiteDir;
    let url: string;
    let snapshot: () => Promise<unknown>;
    /** The database as last seen; only CLI runs may change it. */
    let known: unknown;
    let scratch: ScratchDatabase | undefined;
    let pgliteParent: string | undefined;

    const upgrade = (flags: readonly string[] = ['--non-interactive'], json = false, env?: NodeJS.ProcessEnv): Promise<CliResult> =>
      cli(['upgrade', ...flags, '--root', site.root, '--database', url, ...(json ? ['--json'] : [])], env ? { env } : {});

    /** Runs `upgrade` against the current (broken) code and checks the refusal. */
    async function expectRefused(expected: Omit<BadInput, 'name' | 'edit'>): Promise<void> {
      const before = known;
      const result = await upgrade(expected.flags, expected.json, expected.env);
      const after = (known = await snapshot());
      const context = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;

      expect(result.code, context).toBe(1);
      const printed = parseError(result.stderr);
      expect(printed.code, context).toBe(expected.code);
      expect(printed.file, context).toBe(expected.file);
      if (expected.component !== undefined) expect(printed.component, context).toBe(expected.component);
      if (expected.field !== undefined) expect(printed.field, context).toBe(expected.field);
      if (expected.step !== undefined) expect(printed.step, context).toBe(expected.step);
      expect(printed.fix, context).toBeTruthy();
      if (expected.fix !== undefined) expect(printed.fix, context).toContain(expected.fix);
      expect(result.stderr, 'no stack trace for bad input').not.toMatch(/^\s+at /m);

      if (expected.json) {
        const document = JSON.parse(result.stdout) as { error?: Record<string, unknown> };
        expect(document.error, context).toMatchObject({
          code: expected.code,
          file: expected.file,
          ...(expected.component === undefined ? {} : { component: expected.component }),
        });
      }

      expect(after, 'the database changed').toEqual(before);
    }

    beforeAll(async () => {
      site = await createSiteDir(1);
      if (kind === 'postgres') {
        scratch = await createScratchDatabase('bad_input');
        url = scratch.url;
        snapshot = () => snapshotPostgres(scratch!.url);
      } else {
        pgliteParent = await mkdtemp(join(tmpdir(), 'outageless-bad-input-'));
        const dir = join(pgliteParent, 'db');
        url = await embeddedDatabaseUrl(dir);
        snapshot = () => snapshotPglite(dir);
      }
      const install = await upgrade();
      expect(install.code, install.stderr).toBe(0);
      await site.deploy(2);
      // Control: with good code an upgrade is pending, so a run that went ahead would show.
      const pending = await upgrade(['--is-pending']);
      expect(pending.code, pending.stderr).toBe(2);
      known = await snapshot();
      // The first PGlite start in a fresh clone compiles its WebAssembly while the other worker
      // starts too: give the install room on a loaded 2-core machine.
    }, 300_000);

    afterEach(async () => {
      await site.deploy(2);
    });

    afterAll(async () => {
      await site?.cleanup();
      await scratch?.drop();
      if (pgliteParent) await rm(pgliteParent, { recursive: true, force: true });
    });

    for (const badInput of kind === 'postgres' ? cases : cases.filter((c) => c.bothDatabases)) {
      it(badInput.name, inOrder, async () => {
        await badInput.edit(site);
        await expectRefused(badInput);
      });
    }

    it('two bad inputs at once (unknown type directory + broken version.ts) still print one typed error', inOrder, async () => {
      await site.write('plugins/widget/foo/version.ts', versionFile('widget_foo', 2026020100));
      await replace('plugins/auth/manual/version.ts', "release: '1.1',", "release: '1.1',,")(site);
      const before = known;
      const result = await upgrade();
      const after = (known = await snapshot());
      expect(result.code).toBe(1);
      // Either error is a fine answer; a crash with a stack trace is not.
      expect(result.stderr.split('\n')[0], result.stderr).toMatch(/^OUTAGELESS_ERR_(UNKNOWN_PLUGIN_TYPE|LOAD_FAILED): /);
      expect(result.stderr, result.stderr).not.toMatch(/^\s+at /m);
      expect(after).toEqual(before);
    });

    if (kind === 'postgres') {
      it('a bad manifest found before any query exits promptly, without waiting on idle connections', inOrder, async () => {
        await replace(ASSIGN_VERSION, "component: 'mod_assign',", "component: 'mod_assignment',")(site);
        const started = performance.now();
        const result = await upgrade();
        const elapsed = performance.now() - started;
        known = await snapshot();
        expect(result.code, result.stderr).toBe(1);
        expect(parseError(result.stderr).code).toBe('OUTAGELESS_ERR_COMPONENT_NAME');
        expect(elapsed).toBeLessThan(5_000);
      });
    }

    it('fresh install with a broken db/upgrade.ts (issue 11, item 10)', inOrder, async () => {
      // Its own empty database and site: nothing is installed yet.
      const fresh = await createSiteDir(2);
      let freshDb: ScratchDatabase | undefined;
      let freshParent: string | undefined;
      try {
        await stepAfter(2026030100, 'assign_from_the_future')(fresh);
        let freshUrl: string;
        let freshSnapshot: () => Promise<unknown>;
        if (kind === 'postgres') {
          freshDb = await createScratchDatabase('bad_input_fresh');
          freshUrl = freshDb.url;
          freshSnapshot = () => snapshotPostgres(freshDb!.url);
        } else {
          freshParent = await mkdtemp(join(tmpdir(), 'outageless-bad-input-fresh-'));
          const dir = join(freshParent, 'db');
          freshUrl = await embeddedDatabaseUrl(dir);
          freshSnapshot = () => snapshotPglite(dir);
        }
        const before = await freshSnapshot();
        const result = await cli(['upgrade', '--non-interactive', '--root', fresh.root, '--database', freshUrl]);
        const context = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
        expect(result.code, context).toBe(1);
        expect(parseError(result.stderr), context).toMatchObject({ code: 'OUTAGELESS_ERR_STEP_ABOVE_VERSION', file: ASSIGN_UPGRADE, component: 'mod_assign' });
        expect(await freshSnapshot(), 'the database changed').toEqual(before);
      } finally {
        await fresh.cleanup();
        await freshDb?.drop();
        if (freshParent) await rm(freshParent, { recursive: true, force: true });
      }
    });

    // Last: it upgrades the site to release 2 first.
    it('downgrade: release 1 code over an installed release 2', inOrder, async () => {
      const release1 = known;
      const upgraded = await upgrade();
      expect(upgraded.code, upgraded.stderr).toBe(0);
      known = await snapshot();
      // The snapshot sees real changes (so the "unchanged" assertions above can fail).
      expect(known).not.toEqual(release1);

      await site.deploy(1);
      await expectRefused({ code: 'OUTAGELESS_ERR_DOWNGRADE', file: 'core/version.ts', component: 'core', field: 'version' });
    });
  });
}
