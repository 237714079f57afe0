import { defineSchema } from 'outageless';

/**
 * Online text submissions: one row per assignment submission. Since release 6 the text and
 * its format live only in `content` ({ text, format }): the post step dropped `onlinetext` and
 * `onlineformat` once the release-5 backfill was finished and no release-5 front was left.
 */
export default defineSchema({
  tables: {
    assignsubmission_onlinetext: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        submission: { type: 'bigint' },
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
