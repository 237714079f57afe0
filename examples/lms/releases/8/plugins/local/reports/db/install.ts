import { defineInstall } from 'outageless';

/** The two built-in reports. */
export default defineInstall(async ({ db }) => {
  const reports = [
    { name: 'assign_overdue', source: 'mod_assign', description: 'Submissions still missing after the due date' },
    { name: 'quiz_attempts', source: 'mod_quiz', description: 'Quiz attempts per user and state' },
  ];
  for (const report of reports) {
    const existing = await db
      .selectFrom('local_reports_report')
      .select('id')
      .where('name', '=', report.name)
      .executeTakeFirst();
    if (!existing) await db.insertInto('local_reports_report').values(report).execute();
  }
});
