import { defineInstall } from 'outageless';

/** Gives the admin account a locked password ('!'): it must be set before first login. */
export default defineInstall(async ({ db }) => {
  const admin = await db.selectFrom('user').select('id').where('username', '=', 'admin').executeTakeFirst();
  if (!admin) return;
  const existing = await db
    .selectFrom('auth_manual_credential')
    .select('userid')
    .where('userid', '=', admin.id)
    .executeTakeFirst();
  if (existing) return;
  await db.insertInto('auth_manual_credential').values({ userid: admin.id, passwordhash: '!' }).execute();
});
