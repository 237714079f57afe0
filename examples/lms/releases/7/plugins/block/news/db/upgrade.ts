import { defineUpgrade } from 'outageless';

/** block_news upgrade steps. */
export default defineUpgrade({
  steps: [
    {
      version: 2026020100,
      id: 'news_add_subscription',
      description: 'Create the table of news subscriptions',
      // A new table nothing old reads: safe while old and new code serve side by side.
      outage: 'none',
      async run({ schema }) {
        // A frozen copy of the definition in db/schema.ts of this release: steps never import
        // the current schema, which later releases may change.
        await schema.createTable('block_news_subscription', {
          columns: {
            id: { type: 'bigint', autoIncrement: true },
            userid: { type: 'bigint' },
            course: { type: 'bigint' },
            created: { type: 'timestamp', default: { sql: 'now()' } },
          },
          primaryKey: ['id'],
          indexes: [{ columns: ['userid', 'course'], unique: true }, { columns: ['course'] }],
          foreignKeys: [
            { columns: ['userid'], references: { table: 'user', columns: ['id'] }, onDelete: 'cascade' },
            { columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' },
          ],
        });
      },
    },
    {
      version: 2026040100,
      id: 'news_add_pinned',
      description: 'Let a news post be pinned to the top of the block',
      // Additive with a default: rows that old code inserts are not pinned, so both can serve.
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('block_news_post', 'pinned', { type: 'boolean', default: false });
      },
    },
    {
      version: 2026070100,
      id: 'news_add_post_format',
      description: 'Add the summary of a news post and the version of its format (db/formats.ts)',
      // Additive: release-6 code neither reads nor writes them, and the default stamps what it
      // inserts as format 1 (message only), which release 7 still reads.
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('block_news_post', 'summary', { type: 'varchar(120)', nullable: true });
        await schema.addColumn('block_news_post', 'format_version', { type: 'integer', default: 1 });
      },
    },
  ],
  // Speaks for the whole pending change, db/caches.ts included: no maintenance, but the post
  // lists cached by old code do not know pinned posts, so block_news's own caches are purged.
  metadata(oldVersion) {
    return { maintenance: 'none', purgeCaches: oldVersion < 2026040100 ? 'own' : 'none' };
  },
});
