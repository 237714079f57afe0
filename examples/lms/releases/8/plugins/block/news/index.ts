import type { FastifyInstance } from 'fastify';
import type { TablesOf } from 'outageless';
// Brings in the app.outageless* decorations' types (type-only: nothing loads at run time).
import type {} from 'outageless/fastify';
/**
 * block_news routes, mounted under `/block_news`. Posts have a data format (db/formats.ts):
 * this release stamps version 2 (with the summary) on what it writes and reads version 2
 * only: release 8 is refused until every post is at 2 and no front writes 1. Rows are typed from
 * db/schema.ts through `app.outagelessDatabase`.
 */
type Tables = TablesOf<typeof import('./db/schema.ts').default>;

const summarize = (message: string) => message.replace(/\s+/g, ' ').slice(0, 100);

export default async function routes(app: FastifyInstance): Promise<void> {
  const db = app.outagelessDatabase.kysely<Tables>();
  const post = app.outagelessFormats.for('block_news', 'post');
  app.get('/', async () => ({ component: 'block_news', release: '1.7' }));
  app.get('/config', async () => ({ perpage: 5, showauthor: true }));

  app.post<{ Body: { course?: number; subject?: string; message?: string } | undefined }>('/post', async (request, reply) => {
    const { course, subject, message } = request.body ?? {};
    if (typeof course !== 'number' || !Number.isSafeInteger(course) || typeof subject !== 'string' || typeof message !== 'string') return reply.code(400).send({ error: 'course, subject and message' });
    const row = await db
      .insertInto('block_news_post')
      .values({ course, subject, message, summary: summarize(message), format_version: post.write })
      .returning(['id', 'format_version'])
      .executeTakeFirstOrThrow();
    return { id: Number(row.id), formatVersion: Number(row.format_version) };
  });

  app.get<{ Params: { id: string } }>('/post/:id', async (request, reply) => {
    const id = Number(request.params.id);
    if (!Number.isSafeInteger(id)) return reply.code(404).send({ error: 'no such post' });
    const row = await db.selectFrom('block_news_post').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return reply.code(404).send({ error: 'no such post' });
    if (!post.canRead(row)) return reply.code(503).send({ error: 'this post is still being upgraded, please try again later' });
    return { id, subject: row.subject, summary: row.summary, formatVersion: Number(row.format_version) };
  });
}
