import { defineFormats } from 'outageless';

/**
 * The format of a news post. Version 1: subject and message. Version 2: also its summary (the
 * first 100 characters of the message, on one line). Release 7 writes 2 and still reads 1
 * (phase 1); release 8 reads 2 only (phase 2), once `outageless data backfill block_news/post`
 * has re-written the old posts and no release-6 front is left.
 */
export default defineFormats({
  post: {
    table: 'block_news_post',
    versionColumn: 'format_version',
    read: 2,
    write: 2,
    batchSize: { min: 50, initial: 100, max: 500 },
    async backfill({ db, from, to, write }) {
      const result = await db
        .updateTable('block_news_post')
        .set((eb) => ({ summary: eb.fn('left', [eb.fn('regexp_replace', [eb.ref('message'), eb.val('\\s+'), eb.val(' '), eb.val('g')]), eb.val(100)]), format_version: write }))
        .where('id', '>=', from)
        .where('id', '<=', to)
        .where('format_version', '<', write)
        .executeTakeFirst();
      if (process.env.LMS_BACKFILL_DELAY_MS) await new Promise((resolve) => setTimeout(resolve, Number(process.env.LMS_BACKFILL_DELAY_MS)));
      return Number(result.numUpdatedRows);
    },
  },
});
