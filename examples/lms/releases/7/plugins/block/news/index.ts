/**
 * block_news routes, mounted under `/block_news`. Posts have a data format (db/formats.ts):
 * this release stamps version 2 (with the summary) on what it writes and reads versions 1 and
 * 2, computing the summary of a version-1 post as it reads it. Typed structurally, so nothing
 * imports Fastify.
 */
interface Reply {
  code: (status: number) => Reply;
  send: (body: unknown) => Reply;
}
interface Query {
  where: (column: string, op: string, value: unknown) => Query;
  selectAll: () => Query;
  values: (row: object) => Query;
  returning: (columns: readonly string[]) => Query;
  executeTakeFirst: () => Promise<any>;
}
interface Format {
  readonly write: number;
  canRead: (row: Readonly<Record<string, unknown>>) => boolean;
}
interface NewsApp {
  get: (path: string, handler: (request: { params: { id: string } }, reply: Reply) => unknown) => void;
  post: (path: string, handler: (request: { body?: { course?: number; subject?: string; message?: string } }, reply: Reply) => unknown) => void;
  outageless: { database: { db: { selectFrom: (table: string) => Query; insertInto: (table: string) => Query } } };
  outagelessFormats: { for: (component: string, format: string) => Format };
}

const summarize = (message: string) => message.replace(/\s+/g, ' ').slice(0, 100);

export default async function routes(app: NewsApp): Promise<void> {
  const db = () => app.outageless.database.db;
  const post = app.outagelessFormats.for('block_news', 'post');
  app.get('/', async () => ({ component: 'block_news', release: '1.6' }));
  app.get('/config', async () => ({ perpage: 5, showauthor: true }));

  app.post('/post', async (request, reply) => {
    const { course, subject, message } = request.body ?? {};
    if (!Number.isSafeInteger(course) || typeof subject !== 'string' || typeof message !== 'string') return reply.code(400).send({ error: 'course, subject and message' });
    const row = await db()
      .insertInto('block_news_post')
      .values({ course, subject, message, summary: summarize(message), format_version: post.write })
      .returning(['id', 'format_version'])
      .executeTakeFirst();
    return { id: Number(row.id), formatVersion: Number(row.format_version) };
  });

  app.get('/post/:id', async (request, reply) => {
    const id = Number(request.params.id);
    if (!Number.isSafeInteger(id)) return reply.code(404).send({ error: 'no such post' });
    const row = await db().selectFrom('block_news_post').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return reply.code(404).send({ error: 'no such post' });
    if (!post.canRead(row)) return reply.code(503).send({ error: 'this post is still being upgraded, please try again later' });
    // Version 1 has no summary yet: computed here, as the backfill will store it.
    return { id, subject: row.subject, summary: row.summary ?? summarize(row.message), formatVersion: Number(row.format_version) };
  });
}
