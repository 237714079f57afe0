import { defineSchema } from 'outageless';

/** Core tables: users, courses and site configuration. */
export default defineSchema({
  tables: {
    user: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        username: { type: 'varchar(100)' },
        email: { type: 'varchar(255)' },
        firstname: { type: 'varchar(100)', default: '' },
        lastname: { type: 'varchar(100)', default: '' },
        suspended: { type: 'boolean', default: false },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['username'], unique: true }, { columns: ['email'] }],
    },
    course: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        fullname: { type: 'varchar(255)' },
        shortname: { type: 'varchar(100)' },
        format: { type: 'varchar(50)', default: 'topics' },
        visible: { type: 'boolean', default: true },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['shortname'], unique: true }],
    },
    config: {
      columns: {
        name: { type: 'varchar(100)' },
        value: { type: 'text' },
      },
      primaryKey: ['name'],
    },
  },
});
