import { defineInstall } from 'outageless';

/** Posts a welcome message on the front-page course. */
export default defineInstall(async ({ db }) => {
  const site = await db.selectFrom('course').select('id').where('shortname', '=', 'site').executeTakeFirst();
  if (!site) return;
  const welcome = await db
    .selectFrom('block_news_post')
    .select('id')
    .where('course', '=', site.id)
    .where('subject', '=', 'Welcome')
    .executeTakeFirst();
  if (welcome) return;
  await db
    .insertInto('block_news_post')
    .values({ course: site.id, subject: 'Welcome', message: 'Welcome to Outageless Learning.' })
    .execute();
});
