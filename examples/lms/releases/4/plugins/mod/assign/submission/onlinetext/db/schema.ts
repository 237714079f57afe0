import { defineSchema } from 'outageless';

/** Online text submissions: one row per assignment submission. */
export default defineSchema({
  tables: {
    assignsubmission_onlinetext: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        submission: { type: 'bigint' },
        onlinetext: { type: 'text', nullable: true },
        onlineformat: { type: 'integer', default: 1 },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['submission'], unique: true }],
      foreignKeys: [
        { columns: ['submission'], references: { table: 'assign_submission', columns: ['id'] }, onDelete: 'cascade' },
      ],
    },
  },
});
