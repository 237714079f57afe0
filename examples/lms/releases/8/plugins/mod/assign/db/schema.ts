import { defineSchema } from 'outageless';

/** Assignments and the submissions students make to them. */
export default defineSchema({
  tables: {
    assign: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        course: { type: 'bigint' },
        name: { type: 'varchar(255)' },
        intro: { type: 'text', nullable: true },
        grade: { type: 'numeric(10,5)', default: 100 },
        created: { type: 'timestamp', default: { sql: 'now()' } },
        duedate: { type: 'timestamp', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['course'] }, { columns: ['duedate'] }],
      foreignKeys: [{ columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' }],
    },
    assign_submission: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        assignment: { type: 'bigint' },
        userid: { type: 'bigint' },
        status: { type: 'varchar(30)', default: 'new' },
        created: { type: 'timestamp', default: { sql: 'now()' } },
        latesubmission: { type: 'boolean', default: false },
        timemodified: { type: 'timestamp', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['assignment', 'userid'], unique: true }, { columns: ['userid'] }],
      foreignKeys: [
        { columns: ['assignment'], references: { table: 'assign', columns: ['id'] }, onDelete: 'cascade' },
        { columns: ['userid'], references: { table: 'user', columns: ['id'] }, onDelete: 'cascade' },
      ],
    },
    assign_event_log: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        event: { type: 'varchar(100)' },
        courseid: { type: 'bigint', nullable: true },
        seq: { type: 'integer', nullable: true },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['courseid'] }],
    },
  },
});
