import { defineSchema } from 'outageless';

/** News posts shown in the news block of a course, and who is subscribed to them. */
export default defineSchema({
  tables: {
    block_news_post: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        course: { type: 'bigint' },
        author: { type: 'bigint', nullable: true },
        subject: { type: 'varchar(255)' },
        message: { type: 'text' },
        created: { type: 'timestamp', default: { sql: 'now()' } },
        pinned: { type: 'boolean', default: false },
        // Format `post` (db/formats.ts): 1 = message only, 2 = with its summary.
        summary: { type: 'varchar(120)', nullable: true },
        format_version: { type: 'integer', default: 1 },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['course', 'created'] }],
      foreignKeys: [
        { columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' },
        { columns: ['author'], references: { table: 'user', columns: ['id'] }, onDelete: 'set null' },
      ],
    },
    block_news_subscription: {
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
    },
  },
});
