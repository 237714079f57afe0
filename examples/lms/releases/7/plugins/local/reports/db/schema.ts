import { defineSchema } from 'outageless';

/** Saved report definitions over assignment and quiz data. */
export default defineSchema({
  tables: {
    local_reports_report: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        name: { type: 'varchar(100)' },
        source: { type: 'varchar(50)' },
        description: { type: 'text', nullable: true },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['name'], unique: true }],
    },
  },
});
