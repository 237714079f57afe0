import { CompiledQuery, type Kysely } from 'kysely';
import type { Db } from 'pg-boss';
import type { SiteDatabase } from '../database/open.ts';

/**
 * pg-boss runs on the site's own Kysely instance, through pg-boss's custom `db` option, on
 * PostgreSQL and on the embedded PGlite alike. One code path for both dialects, and on PGlite
 * it is the only possibility: the instance is shared and single-connection, so pg-boss must
 * queue behind Kysely's connection mutex like every other query of the process.
 *
 * pg-boss sends two kinds of SQL:
 * - one statement with `$n` parameters: passed through as it is;
 * - parameterless text that may hold several statements (schema creation, migrations, and
 *   `BEGIN; SELECT pg_advisory_xact_lock(...); ...; COMMIT` blocks). PGlite's `query()` uses
 *   the extended protocol, which takes one statement only, so the text is split here. A
 *   `BEGIN; …; COMMIT` block (pg-boss's `locked()`) runs as a Kysely transaction; other text
 *   runs statement by statement on ONE held connection (`db.connection()`). Rows of every
 *   statement are returned together, as pg-boss's PGlite adapter does, so a `RETURNING` before
 *   the `COMMIT` is not lost. After a failure the block is rolled back, so the session is never
 *   left in an aborted transaction.
 */
export function kyselyExecutor(db: Kysely<any>): Db {
  return {
    async executeSql(text: string, values?: unknown[]) {
      if (values && values.length > 0) {
        const result = await db.executeQuery(CompiledQuery.raw(text, values));
        return { rows: [...result.rows] };
      }
      const statements = splitStatements(text);
      if (statements.length <= 1) {
        const result = await db.executeQuery(CompiledQuery.raw(statements[0] ?? text, []));
        return { rows: [...result.rows] };
      }
      if (/^begin$/i.test(statements[0]!) && /^commit$/i.test(statements.at(-1)!)) {
        // A BEGIN … COMMIT block runs as a Kysely transaction: on PGlite that is PGlite's own
        // exclusive transaction, which keeps out every other user of the shared instance
        // (other Kysely instances included), not only this Kysely's queries.
        return db.transaction().execute(async (trx) => {
          const rows: unknown[] = [];
          for (const statement of statements.slice(1, -1)) rows.push(...(await trx.executeQuery(CompiledQuery.raw(statement, []))).rows);
          return { rows };
        });
      }
      return db.connection().execute(async (connection) => {
        const rows: unknown[] = [];
        try {
          for (const statement of statements) {
            const result = await connection.executeQuery(CompiledQuery.raw(statement, []));
            rows.push(...result.rows);
          }
        } catch (error) {
          // Outside a transaction block this only warns; inside one it ends the aborted block.
          await connection.executeQuery(CompiledQuery.raw('rollback', [])).catch(() => {});
          throw error;
        }
        return { rows };
      });
    },
  };
}

/**
 * A pg-boss executor bound to a transaction: pass `{ db: transactionExecutor(trx) }` to a
 * pg-boss call so its statements commit or roll back with `trx`.
 *
 * On PGlite the whole process has one connection, held by `trx` until it ends: the pg-boss
 * call must not need the instance's own executor meanwhile (it would wait for `trx` forever).
 * pg-boss only does so to load a queue it has not cached, so callers warm the queue first
 * (see `warmQueue` in runtime.ts).
 */
export function transactionExecutor(trx: Kysely<any>): Db {
  return {
    async executeSql(text: string, values?: unknown[]) {
      const result = await trx.executeQuery(CompiledQuery.raw(text, values ?? []));
      return { rows: [...result.rows] };
    },
  };
}

/** The pg-boss backend profile for a site database. */
export function backendOf(database: SiteDatabase): 'postgres' | 'pglite' {
  return database.kind === 'pglite' ? 'pglite' : 'postgres';
}

/**
 * Splits SQL text into statements at top-level semicolons, leaving semicolons inside
 * string literals, quoted identifiers, dollar-quoted bodies (`$$ … $$`, `$tag$ … $tag$`) and
 * comments alone. Empty statements are dropped.
 *
 * @example
 * ```ts
 * splitStatements("BEGIN; CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; COMMIT;")
 * // ['BEGIN', 'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql', 'COMMIT']
 * ```
 */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const n = text.length;
  const push = (end: number) => {
    // Comments before a statement are dropped, so `COMMIT` is recognised after one.
    const statement = text.slice(start, end).replace(LEADING_COMMENTS, '').trim();
    if (statement.length > 0) statements.push(statement);
  };
  while (i < n) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '-' && next === '-') {
      const end = text.indexOf('\n', i + 2);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && next === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (text[i] === '/' && text[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (text[i] === '*' && text[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === "'") {
      // E'…' strings take backslash escapes; standard strings only double the quote.
      const escapes = i > 0 && /[eE]/.test(text[i - 1]!) && (i < 2 || !/[\w$]/.test(text[i - 2]!));
      i++;
      while (i < n) {
        if (escapes && text[i] === '\\') i += 2;
        else if (text[i] === "'" && text[i + 1] === "'") i += 2;
        else if (text[i] === "'") break;
        else i++;
      }
      i++;
    } else if (c === '"') {
      i++;
      while (i < n) {
        if (text[i] === '"' && text[i + 1] === '"') i += 2;
        else if (text[i] === '"') break;
        else i++;
      }
      i++;
    } else if (c === '$' && !(i > 0 && /[\w$]/.test(text[i - 1]!))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i));
      if (tag) {
        const close = text.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? n : close + tag[0].length;
      } else i++;
    } else if (c === ';') {
      push(i);
      i++;
      start = i;
    } else i++;
  }
  push(n);
  return statements;
}

const LEADING_COMMENTS = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)+/;
