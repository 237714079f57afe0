/**
 * assignsubmission_onlinetext routes. Since release 6 a submission's text lives only in the JSON
 * column `content`. This release is gated on the release-5 backfill (`after:` in db/upgrade.ts),
 * so every row has it and no route needs `ensureDone` any more. Typed structurally, so nothing
 * imports Fastify.
 */
type Format = 'html' | 'markdown' | 'plain';
interface Content {
  readonly text: string;
  readonly format: Format;
}
interface Reply {
  code: (status: number) => Reply;
  send: (body: unknown) => Reply;
}
interface Query {
  where: (column: string, op: string, value: unknown) => Query;
  select: (columns: readonly string[]) => Query;
  values: (row: object) => Query;
  onConflict: (build: (oc: any) => any) => Query;
  returning: (columns: readonly string[]) => Query;
  executeTakeFirst: () => Promise<any>;
}
interface OnlineTextApp {
  get: (path: string, handler: (request: { params: { id: string } }, reply: Reply) => unknown) => void;
  put: (path: string, handler: (request: { params: { id: string }; body?: { text?: string; format?: string } }, reply: Reply) => unknown) => void;
  outageless: { database: { db: { selectFrom: (table: string) => Query; insertInto: (table: string) => Query } } };
}

const FORMATS: readonly Format[] = ['html', 'markdown', 'plain'];

export default async function routes(app: OnlineTextApp): Promise<void> {
  const db = () => app.outageless.database.db;
  app.get('/', async () => ({ component: 'assignsubmission_onlinetext', release: '1.5' }));
  app.get('/formats', async () => ({ formats: [{ id: 1, name: 'html' }, { id: 2, name: 'markdown' }] }));

  app.get('/text/:id', async (request, reply) => {
    const id = Number(request.params.id);
    if (!Number.isSafeInteger(id)) return reply.code(404).send({ error: 'no such submission text' });
    const row = await db().selectFrom('assignsubmission_onlinetext').select(['id', 'submission', 'content']).where('id', '=', id).executeTakeFirst();
    if (!row) return reply.code(404).send({ error: 'no such submission text' });
    const content = (typeof row.content === 'string' ? JSON.parse(row.content) : row.content) as Content;
    return { id: Number(row.id), submission: Number(row.submission), content };
  });

  // Writes the new shape only. Until the post step drops them, onlinetext stays NULL and
  // onlineformat gets its default on rows written here: only release-5 fronts read them, and
  // they read content.
  app.put('/submission/:id/text', async (request, reply) => {
    const submission = Number(request.params.id);
    const format = (request.body?.format ?? 'html') as Format;
    if (!Number.isSafeInteger(submission) || !FORMATS.includes(format)) return reply.code(400).send({ error: 'a submission id and a format of html, markdown or plain' });
    const content = JSON.stringify({ text: request.body?.text ?? '', format } satisfies Content);
    const row = await db()
      .insertInto('assignsubmission_onlinetext')
      .values({ submission, content })
      .onConflict((oc) => oc.column('submission').doUpdateSet({ content }))
      .returning(['id'])
      .executeTakeFirst();
    return { id: Number(row.id), submission, content: JSON.parse(content) as Content };
  });
}
