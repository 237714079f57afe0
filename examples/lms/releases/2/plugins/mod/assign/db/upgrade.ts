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
  ],
});
