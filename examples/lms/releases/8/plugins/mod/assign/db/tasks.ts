/** Scheduled tasks of mod_assign. Editing this file changes the db/ hash (MDL-65471 test plan). */
export default [
  {
    name: 'send_due_reminders',
    schedule: '*/5 * * * *',
    description: 'Remind students of assignments that are due within the next day',
  },
] as const;
