import { defineUpgrade } from 'outageless';

/**
 * assignsubmission_onlinetext upgrade steps: expand → backfill → contract. Release 5 adds
 * `content` (pre) and fills it from `onlinetext` / `onlineformat` in the background; release
 * 6 drops the old columns (post) once the backfill is finished.
 */
export default defineUpgrade({
  steps: [
    {
      version: 2026050100,
      id: 'onlinetext_add_content',
      description: 'Add the nullable JSON column content ({ text, format }) next to onlinetext and onlineformat',
      // Expand: a nullable column that old code neither reads nor writes, so it runs before
      // any new front takes traffic, while the old ones serve.
      phase: 'pre',
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('assignsubmission_onlinetext', 'content', { type: 'json', nullable: true });
      },
    },
    {
      phase: 'background',
      version: 2026050101,
      id: 'onlinetext_content',
      description: 'Copy each submission\'s onlinetext and onlineformat into content, a batch of ids at a time',
      table: 'assignsubmission_onlinetext',
      key: 'id',
      // Small batches on purpose: the example site's few thousand rows take a few dozen
      // batches, so the progress is visible.
      batchSize: { min: 50, initial: 100, max: 500 },
      async batch({ db, from, to }) {
        // Guarded: rows that new code wrote (it writes both shapes) already have content.
        const result = await db
          .updateTable('assignsubmission_onlinetext')
          .set((eb) => ({
            content: eb.fn('jsonb_build_object', [
              eb.cast(eb.val('text'), 'text'),
              eb.fn.coalesce('onlinetext', eb.cast(eb.val(''), 'text')),
              eb.cast(eb.val('format'), 'text'),
              // The integer format codes of releases 1-4 (see /formats) become names.
              eb.case().when('onlineformat', '=', 1).then(eb.cast(eb.val('html'), 'text'))
                .when('onlineformat', '=', 2).then(eb.cast(eb.val('markdown'), 'text'))
                .else(eb.cast(eb.val('plain'), 'text')).end(),
            ]),
          }))
          .where('id', '>=', from)
          .where('id', '<=', to)
          .where('content', 'is', null)
          .executeTakeFirst();
        return Number(result.numUpdatedRows);
      },
    },
    {
      version: 2026060100,
      id: 'onlinetext_drop_legacy',
      description: 'Drop onlinetext and onlineformat: content holds every submission\'s text and format',
      // Contract: release-5 fronts still write onlinetext, so this runs only once none is left
      // (phase post), and only after the backfill has reached every old row (after). Breaking
      // the old code is the point here, and a column drop takes its lock for an instant.
      phase: 'post',
      outage: 'none',
      after: ['assignsubmission_onlinetext/onlinetext_content'],
      async run({ schema }) {
        await schema.dropColumn('assignsubmission_onlinetext', 'onlinetext');
        await schema.dropColumn('assignsubmission_onlinetext', 'onlineformat');
      },
    },
  ],
});
