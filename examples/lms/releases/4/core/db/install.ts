import { defineInstall } from 'outageless';

/** A fresh site: the front-page course, the admin account and a few settings. */
export default defineInstall(async ({ db, log }) => {
  const site = await db.selectFrom('course').select('id').where('shortname', '=', 'site').executeTakeFirst();
  if (!site) {
    await db
      .insertInto('course')
      .values({ fullname: 'Outageless Learning', shortname: 'site', format: 'site' })
      .execute();
  }

  const admin = await db.selectFrom('user').select('id').where('username', '=', 'admin').executeTakeFirst();
  if (!admin) {
    await db
      .insertInto('user')
      .values({ username: 'admin', email: 'admin@example.com', firstname: 'Site', lastname: 'Administrator' })
      .execute();
  }

  const settings: Record<string, string> = {
    sitename: 'Outageless Learning',
    lang: 'en',
    theme: 'clean',
    defaultformat: 'topics',
  };
  for (const [name, value] of Object.entries(settings)) {
    const existing = await db.selectFrom('config').select('name').where('name', '=', name).executeTakeFirst();
    if (!existing) await db.insertInto('config').values({ name, value }).execute();
  }
  log('the site course, the admin user and the default settings are in place');
});
