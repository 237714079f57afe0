import { defineSchema } from 'outageless';

/** Calendar events: site-wide (no course, no user), course events or personal events. */
export default defineSchema({
  tables: {
    block_calendar_event: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        course: { type: 'bigint', nullable: true },
        userid: { type: 'bigint', nullable: true },
        name: { type: 'varchar(255)' },
        description: { type: 'text', nullable: true },
        timestart: { type: 'timestamp' },
        duration: { type: 'integer', default: 0 },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['timestart'] }, { columns: ['course'] }, { columns: ['userid'] }],
      foreignKeys: [
        { columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' },
        { columns: ['userid'], references: { table: 'user', columns: ['id'] }, onDelete: 'cascade' },
      ],
    },
  },
});
