/**
 * assignsubmission_onlinetext routes. From release 5 a submission's text is read from the JSON
 * column `content`; rows written before release 5 get it from the background migration
 * `onlinetext_content`, and until it reaches a row that row answers 503 "still being upgraded".
 * Typed structurally, so nothing imports Fastify.
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
  outagelessMigrations: { ensureDone: (reply: Reply, component: string, id: string, key: number) => Promise<boolean> };
}

const FORMAT_CODES: Readonly<Record<Format, number>> = { html: 1, markdown: 2, plain: 0 };

export default async function routes(app: OnlineTextApp): Promise<void> {
  const db = () => app.outageless.database.db;
  app.get('/', async () => ({ component: 'assignsubmission_onlinetext', release: '1.4' }));
  app.get('/formats', async () => ({ formats: [{ id: 1, name: 'html' }, { id: 2, name: 'markdown' }] }));

  // Reads the new shape only: a row the migration has not reached is "still being upgraded".
  app.get('/text/:id', async (request, reply) => {
    const id = Number(request.params.id);
    if (!Number.isSafeInteger(id)) return reply.code(404).send({ error: 'no such submission text' });
    if (!(await app.outagelessMigrations.ensureDone(reply, 'assignsubmission_onlinetext', 'onlinetext_content', id))) return reply;
    const row = await db().selectFrom('assignsubmission_onlinetext').select(['id', 'submission', 'content']).where('id', '=', id).executeTakeFirst();
    if (!row) return reply.code(404).send({ error: 'no such submission text' });
    const content = (typeof row.content === 'string' ? JSON.parse(row.content) : row.content) as Content;
    return { id: Number(row.id), submission: Number(row.submission), content };
  });

  // Writes both shapes: fronts still on release 4 read onlinetext during the rollout, and a
  // row written here never needs the migration.
  app.put('/submission/:id/text', async (request, reply) => {
    const submission = Number(request.params.id);
    const format = (request.body?.format ?? 'html') as Format;
    if (!Number.isSafeInteger(submission) || !(format in FORMAT_CODES)) return reply.code(400).send({ error: 'a submission id and a format of html, markdown or plain' });
    const text = request.body?.text ?? '';
    const content = JSON.stringify({ text, format } satisfies Content);
    const row = await db()
      .insertInto('assignsubmission_onlinetext')
      .values({ submission, onlinetext: text, onlineformat: FORMAT_CODES[format], content })
      .onConflict((oc) => oc.column('submission').doUpdateSet({ onlinetext: text, onlineformat: FORMAT_CODES[format], content }))
      .returning(['id'])
      .executeTakeFirst();
    return { id: Number(row.id), submission, content: { text, format } };
  });
}
