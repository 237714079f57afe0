import { defineSchema } from 'outageless';

/** The topic sections of courses that use the topics format. */
export default defineSchema({
  tables: {
    format_topics_section: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        course: { type: 'bigint' },
        section: { type: 'integer' },
        name: { type: 'varchar(255)', nullable: true },
        visible: { type: 'boolean', default: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['course', 'section'], unique: true }],
      foreignKeys: [{ columns: ['course'], references: { table: 'course', columns: ['id'] }, onDelete: 'cascade' }],
    },
  },
});
