import { createQueryId, PostgresQueryCompiler, type KyselyPlugin, type RootOperationNode } from 'kysely';
import { schemaErrors } from '../schema/errors.ts';
import { assessStatement } from '../schema/online-safety.ts';

/**
 * The run-time half of the verified outage class: the `ctx.db` of a step that runs online
 * refuses, before sending it, SQL that would break the code still serving or block its
 * traffic (a raw RENAME, a non-concurrent index, an UPDATE of every row). The plan reads the
 * step's source first; this catches what the source did not show (SQL built at run time).
 *
 * @example
 * ```ts
 * const guarded = connection.withPlugin(onlineSqlGuard('mod_assign', 'assign_rename'))
 * await sql`alter table assign rename column name to title`.execute(guarded) // throws OUTAGELESS_ERR_UNSAFE_ONLINE
 * ```
 */
export function onlineSqlGuard(component: string, step: string, options: { readonly allowBreaking?: boolean } = {}): KyselyPlugin {
  return {
    transformQuery({ node }) {
      const refusal = refuse(node, options.allowBreaking ?? false);
      if (refusal) throw schemaErrors.unsafeOnline(component, step, refusal);
      return node;
    },
    transformResult: async ({ result }) => result,
  };
}

function refuse(node: RootOperationNode, allowBreaking: boolean): string | undefined {
  if (node.kind === 'RawNode') {
    // Compiled, so identifiers (`sql.id`, `sql.table`) read as the server will see them.
    const verdict = assessStatement(new PostgresQueryCompiler().compileQuery(node, createQueryId()).sql);
    return (verdict.kind === 'breaking' && !allowBreaking) || verdict.kind === 'blocking' ? `${verdict.reason}. Safe alternative: ${verdict.alternative}` : undefined;
  }
  if ((node.kind === 'UpdateQueryNode' || node.kind === 'DeleteQueryNode') && !node.where) {
    return `ctx.db sends ${node.kind === 'UpdateQueryNode' ? 'an UPDATE' : 'a DELETE'} without a where: one statement changes every row, and its row locks block writers until it commits. Safe alternative: schema.backfill(), which works in key-range batches`;
  }
  return undefined;
}
