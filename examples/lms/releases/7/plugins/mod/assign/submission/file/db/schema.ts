import { defineSchema } from 'outageless';

/** File submissions: one row per assignment submission. */
export default defineSchema({
  tables: {
    assignsubmission_file: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        submission: { type: 'bigint' },
        numfiles: { type: 'integer', default: 0 },
        totalsize: { type: 'bigint', default: 0 },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['submission'], unique: true }],
      foreignKeys: [
        { columns: ['submission'], references: { table: 'assign_submission', columns: ['id'] }, onDelete: 'cascade' },
      ],
    },
  },
});
