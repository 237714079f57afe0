import { defineUpgrade } from 'outageless';

/** mod_assign upgrade steps. */
export default defineUpgrade({
  steps: [
    {
      version: 2026020100,
      id: 'assign_add_duedate',
      description: 'Add an optional due date to assignments, indexed for the due-reminder task',
      // Additive and nullable: old code never reads or writes the column, so both can serve.
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('assign', 'duedate', { type: 'timestamp', nullable: true });
        await schema.addIndex('assign', { columns: ['duedate'] });
      },
    },
    {
      version: 2026030100,
      id: 'assign_submission_add_latesubmission',
      description: 'Flag submissions made after the due date',
      // Additive with a default: rows that old code inserts get false, so both can serve.
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('assign_submission', 'latesubmission', { type: 'boolean', default: false });
      },
    },
    {
      version: 2026040100,
      id: 'assign_submission_timemodified',
      description: 'Record when each submission last changed (backfilled from created), and log the course views mod_assign observes',
      // Old mod_assign code neither sets timemodified nor knows the log table, and new code
      // expects every submission to have a timemodified: the two cannot serve side by side.
      // Only mod_assign is concerned, and it declares maintenance: { disableable: true }, so
      // only mod_assign pauses; the rest of the site keeps serving.
      outage: 'component',
      async run({ schema, log }) {
        await schema.addColumn('assign_submission', 'timemodified', { type: 'timestamp', nullable: true });
        // Batched and guarded: a rerun finds no NULL left and updates nothing.
        const updated = await schema.backfill('assign_submission', { set: { timemodified: { sql: 'created' } }, where: { sql: 'timemodified is null' } });
        log(`assign_submission: backfilled timemodified on ${updated} submissions`);
        // A frozen copy of the definition in db/schema.ts of this release.
        await schema.createTable('assign_event_log', {
          columns: {
            id: { type: 'bigint', autoIncrement: true },
            event: { type: 'varchar(100)' },
            courseid: { type: 'bigint', nullable: true },
            seq: { type: 'integer', nullable: true },
            created: { type: 'timestamp', default: { sql: 'now()' } },
          },
          primaryKey: ['id'],
          indexes: [{ columns: ['courseid'] }],
        });
      },
    },
  ],
  // Speaks for the whole pending change: no maintenance, but grading pages cached by old code
  // do not show the late flag, so mod_assign's own caches are purged after cutover.
  metadata(oldVersion) {
    return { maintenance: 'none', purgeCaches: oldVersion < 2026030100 ? 'own' : 'none' };
  },
});
