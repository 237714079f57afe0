import { defineSchema } from 'outageless';

/** Password credentials of manually created accounts. */
export default defineSchema({
  tables: {
    auth_manual_credential: {
      columns: {
        userid: { type: 'bigint' },
        passwordhash: { type: 'varchar(255)' },
        changed: { type: 'timestamp', default: { sql: 'now()' } },
        resettoken: { type: 'varchar(64)', nullable: true },
      },
      primaryKey: ['userid'],
      foreignKeys: [{ columns: ['userid'], references: { table: 'user', columns: ['id'] }, onDelete: 'cascade' }],
    },
  },
});
