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
  ],
  // Speaks for the whole pending change: no maintenance, but grading pages cached by old code
  // do not show the late flag, so mod_assign's own caches are purged after cutover.
  metadata(oldVersion) {
    return { maintenance: 'none', purgeCaches: oldVersion < 2026030100 ? 'own' : 'none' };
  },
});
