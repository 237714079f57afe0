import type { UpgradeStep } from '../component/definitions.ts';
import type { ColumnDefinition, IndexDefinition } from '../schema/definition.ts';
import { assessHelperCall, assessStatement, describeCall, type HelperCall, type SchemaShape } from '../schema/online-safety.ts';

/**
 * The verified outage class (DESIGN §4.7): a step's `outage` is a claim, and the plan checks
 * it before anything runs. The plan never runs a step to find out (a step may write files or
 * wait on the world); it reads the step's source instead: every `ctx.schema` helper call,
 * every `sql` template and `sql.raw()` text, and every query-builder UPDATE or DELETE, and
 * judges each by what it does to the code still serving. What cannot be read statically is
 * reported as unverified, and caught at run time: online helpers refuse breaking changes,
 * and an online step's `ctx.db` refuses breaking or blocking SQL before sending it.
 */

/** Why a step declared `none` needs more, or what could not be verified. */
export type StepFinding =
  | { readonly kind: 'breaking' | 'blocking' | 'held-locks'; readonly reason: string; readonly alternative: string }
  | { readonly kind: 'unverified'; readonly reason: string };

export interface StepVerification {
  /** Helper calls whose arguments could be read. */
  readonly calls: readonly HelperCall[];
  /** SQL text found in the step (templates with `${…}` shown as `$n`). */
  readonly statements: readonly string[];
  readonly findings: readonly StepFinding[];
}

const HELPERS = [
  'createTable',
  'dropTable',
  'renameTable',
  'addColumn',
  'dropColumn',
  'renameColumn',
  'changeColumn',
  'addIndex',
  'dropIndex',
  'addForeignKey',
  'dropForeignKey',
  'addCheck',
  'dropCheck',
  'backfill',
] as const;
type HelperName = (typeof HELPERS)[number];

/** The text of the balanced `( … )` that opens at `open`, or undefined. Skips strings. */
function balanced(source: string, open: number): { text: string; end: number } | undefined {
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    const char = source[i]!;
    if (char === "'" || char === '"' || char === '`') {
      i = skipString(source, i);
      continue;
    }
    if (char === '(' || char === '{' || char === '[') depth++;
    else if (char === ')' || char === '}' || char === ']') {
      depth--;
      if (depth === 0) return { text: source.slice(open + 1, i), end: i };
    }
  }
  return undefined;
}

function skipString(source: string, start: number): number {
  const quote = source[start];
  for (let i = start + 1; i < source.length; i++) {
    if (source[i] === '\\') i++;
    else if (quote === '`' && source[i] === '$' && source[i + 1] === '{') {
      const inner = balanced(source, i + 1);
      if (!inner) return source.length;
      i = inner.end;
    } else if (source[i] === quote) return i;
  }
  return source.length;
}

/** Splits call arguments at top-level commas. */
function splitArguments(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === "'" || char === '"' || char === '`') i = skipString(text, i);
    else if ('({['.includes(char)) depth++;
    else if (')}]'.includes(char)) depth--;
    else if (char === ',' && depth === 0) {
      parts.push(text.slice(from, i).trim());
      from = i + 1;
    }
  }
  const last = text.slice(from).trim();
  if (last) parts.push(last);
  return parts;
}

/** A string literal's value, or undefined for anything computed. */
function stringLiteral(text: string | undefined): string | undefined {
  const match = text === undefined ? null : /^(['"])((?:[^\\]|\\.)*?)\1$/.exec(text) ?? /^`([^`$\\]*)`$/.exec(text);
  if (!match) return undefined;
  return match.length === 3 ? match[2] : match[1];
}

/**
 * The value of a plain object or array literal (`{ type: 'integer', nullable: true }`), or
 * undefined when it computes anything: only literals are ever evaluated.
 */
function plainLiteral(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  const withoutStrings = text.replace(/(['"])(?:[^\\]|\\.)*?\1/g, "''");
  if (/[`()=;]|=>|\bnew\b|\bfunction\b/.test(withoutStrings) || !/^[[{]/.test(text.trim())) return undefined;
  if (!/^[\s\w'":,.{}[\]+-]*$/.test(withoutStrings)) return undefined;
  try {
    return new Function(`"use strict"; return (${text});`)();
  } catch {
    return undefined;
  }
}

/** Turns one helper call's source into a `HelperCall`, or undefined when its arguments are computed. */
function readCall(name: HelperName, args: readonly string[]): HelperCall | undefined {
  const s = (index: number) => stringLiteral(args[index]);
  const table = s(0);
  switch (name) {
    case 'renameTable':
      return table !== undefined && s(1) !== undefined ? { kind: 'renameTable', from: table, to: s(1)! } : undefined;
    case 'dropTable':
      return table !== undefined ? { kind: 'dropTable', table } : undefined;
    case 'createTable': {
      const definition = plainLiteral(args[1]);
      return table !== undefined ? { kind: 'createTable', table, definition: (definition ?? { columns: {} }) as never } : undefined;
    }
    case 'renameColumn':
      return table !== undefined && s(1) !== undefined && s(2) !== undefined ? { kind: 'renameColumn', table, from: s(1)!, to: s(2)! } : undefined;
    case 'dropColumn':
      return table !== undefined && s(1) !== undefined ? { kind: 'dropColumn', table, column: s(1)! } : undefined;
    case 'addColumn':
    case 'changeColumn': {
      const definition = plainLiteral(args[2]) as ColumnDefinition | undefined;
      if (table === undefined || s(1) === undefined || !definition || typeof definition.type !== 'string') return undefined;
      return { kind: name, table, column: s(1)!, definition };
    }
    case 'addIndex': {
      const index = plainLiteral(args[1]) as IndexDefinition | undefined;
      return table !== undefined && index ? { kind: 'addIndex', table, index } : undefined;
    }
    case 'backfill':
      return table !== undefined ? { kind: 'backfill', table } : undefined;
    default:
      // Indexes and constraints dropped or added online are safe whatever their arguments.
      return table !== undefined ? ({ kind: name, table } as unknown as HelperCall) : undefined;
  }
}

/** SQL text in `sql\`…\`` templates and `sql.raw('…')` calls, placeholders as `$n`. */
function sqlTexts(source: string): string[] {
  const texts: string[] = [];
  for (const match of source.matchAll(/\bsql\s*`/g)) {
    const start = match.index + match[0].length - 1;
    const end = skipString(source, start);
    let n = 0;
    texts.push(source.slice(start + 1, end).replace(/\$\{[^}]*\}/g, () => `$${++n}`));
  }
  for (const match of source.matchAll(/\bsql\s*\.\s*raw\s*\(/g)) {
    const call = balanced(source, match.index + match[0].length - 1);
    const literal = stringLiteral(call?.text.trim());
    if (literal !== undefined) texts.push(literal);
  }
  return texts;
}

/** Query-builder UPDATE / DELETE chains without a `.where(`: they change every row at once. */
function bulkWrites(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/\.\s*(updateTable|deleteFrom)\s*\(/g)) {
    const rest = source.slice(match.index);
    const end = rest.search(/\.\s*execute(TakeFirst|TakeFirstOrThrow)?\s*\(|;/);
    const chain = end === -1 ? rest : rest.slice(0, end);
    if (!/\.\s*where(Ref)?\s*\(/.test(chain)) found.push(chain.replace(/\s+/g, ' ').slice(0, 100));
  }
  return found;
}

/**
 * Reads one step's source and judges what it would do while the site serves.
 *
 * @example
 * ```ts
 * const { findings } = verifyStep(step, liveSchema)
 * if (findings.some((f) => f.kind === 'breaking')) console.log(findings[0].reason)
 * ```
 */
export function verifyStep(step: UpgradeStep, live: SchemaShape | undefined): StepVerification {
  const source = step.run.toString();
  const calls: HelperCall[] = [];
  const findings: StepFinding[] = [];
  let ddl = false;

  for (const match of source.matchAll(new RegExp(`\\b(${HELPERS.join('|')})\\s*\\(`, 'g'))) {
    const name = match[1] as HelperName;
    // Kysely's own schema builder has methods of the same names: judged as SQL below.
    const before = source.slice(Math.max(0, match.index - 200), match.index);
    if (/\.\s*schema\s*\.\s*(alterTable|createTable|dropTable|createIndex|dropIndex)\s*\([^;]*$/.test(before)) continue;
    const call = balanced(source, match.index + match[0].length - 1);
    const parsed = call ? readCall(name, splitArguments(call.text)) : undefined;
    if (name !== 'backfill') ddl = true;
    if (parsed) {
      calls.push(parsed);
      const verdict = assessHelperCall(parsed, live);
      if (verdict.kind === 'breaking') findings.push({ kind: 'breaking', reason: verdict.reason, alternative: verdict.alternative });
    } else if (['renameTable', 'dropTable', 'renameColumn', 'dropColumn', 'changeColumn', 'addColumn'].includes(name)) {
      findings.push({ kind: 'unverified', reason: `schema.${name}(…) has computed arguments, so the plan cannot tell what it changes; the helper still refuses a breaking change when it runs online` });
    }
  }

  const statements = sqlTexts(source);
  for (const statement of statements) {
    const verdict = assessStatement(statement);
    if (/^\s*(alter|create|drop)\b/i.test(statement)) ddl = true;
    if (verdict.kind === 'unverified') findings.push({ kind: 'unverified', reason: verdict.reason });
    else if (verdict.kind !== 'safe') findings.push({ kind: verdict.kind, reason: verdict.reason, alternative: verdict.alternative });
  }
  for (const chain of bulkWrites(source)) {
    findings.push({
      kind: 'blocking',
      reason: `ctx.db runs \`${chain}\` without a where: one statement changes every row, and its row locks block writers until it commits`,
      alternative: 'use schema.backfill(), which works in key-range batches of their own transactions, or a background migration',
    });
  }
  if (/\.\s*schema\s*\.\s*(alterTable|createIndex|dropTable|dropIndex)\s*\(/.test(source)) {
    ddl = true;
    findings.push({ kind: 'unverified', reason: "it uses Kysely's schema builder (ctx.db.schema), which bypasses the lock-safe helpers; use ctx.schema, or verify it with `outageless rehearse`" });
  }
  if (step.transaction === true && ddl) {
    findings.push({
      kind: 'held-locks',
      reason: `transaction: true keeps the lock of every DDL statement (${calls.map(describeCall).join(', ') || 'raw DDL'}) until the whole step commits`,
      alternative: 'leave transaction undeclared: an online step runs each helper call in its own short transaction (the step must then be idempotent, as the helpers are)',
    });
  }
  return { calls, statements, findings };
}
