import { defineSchema } from 'outageless';

/** Quizzes and the attempts users make at them. */
export default defineSchema({
  tables: {
    quiz: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        course: { type: 'bigint' },
        name: { type: 'varchar(255)' },
        intro: { type: 'text', nullable: true },
        grade: { type: 'numeric(10,5)', default: 0 },
        timeopen: { type: 'timestamp', nullable: true },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['course'] }],
      foreignKeys: [{ columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' }],
    },
    quiz_attempts: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        quiz: { type: 'bigint' },
        userid: { type: 'bigint' },
        attempt: { type: 'integer' },
        state: { type: 'varchar(16)', default: 'inprogress' },
        sumgrades: { type: 'numeric(10,5)', nullable: true },
        timestart: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['quiz', 'userid', 'attempt'], unique: true }, { columns: ['userid'] }],
      foreignKeys: [
        { columns: ['quiz'], references: { table: 'quiz', columns: ['id'] }, onDelete: 'cascade' },
        { columns: ['userid'], references: { table: 'user', columns: ['id'] }, onDelete: 'cascade' },
      ],
    },
  },
});
