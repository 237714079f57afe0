import { defineUpgrade } from 'outageless';

/** assignsubmission_file upgrade steps. */
export default defineUpgrade({
  steps: [
    {
      version: 2026030100,
      id: 'file_add_totalsize',
      description: 'Record the total size in bytes of the files of each submission',
      // Additive with a default: rows that old code inserts get 0, so both can serve.
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('assignsubmission_file', 'totalsize', { type: 'bigint', default: 0 });
      },
    },
  ],
});
