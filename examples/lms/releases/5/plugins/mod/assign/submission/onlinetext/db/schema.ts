import { defineSchema } from 'outageless';

/**
 * Online text submissions: one row per assignment submission. Release 5 moves the text and
 * its format code into one JSON document, `content` ({ text, format }): both shapes live side
 * by side until the background migration has filled `content` for every old row, and release
 * 6 drops the old columns.
 */
export default defineSchema({
  tables: {
    assignsubmission_onlinetext: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        submission: { type: 'bigint' },
        onlinetext: { type: 'text', nullable: true },
        onlineformat: { type: 'integer', default: 1 },
        content: { type: 'json', nullable: true },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['submission'], unique: true }],
      foreignKeys: [
        { columns: ['submission'], references: { table: 'assign_submission', columns: ['id'] }, onDelete: 'cascade' },
      ],
    },
  },
});
