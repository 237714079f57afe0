/** mod_assign routes, mounted under `/mod_assign`. Static JSON: no database access in routes yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'mod_assign', release: '1.3' }));
  app.get('/capabilities', async () => ({
    capabilities: ['mod/assign:view', 'mod/assign:submit', 'mod/assign:grade'],
  }));
  app.get('/submission-types', async () => ({ types: ['assignsubmission_file', 'assignsubmission_onlinetext'] }));
}

/**
 * Handlers for db/tasks.ts. They live here, outside db/, so changing a handler is a code-only
 * change and never affects the component's definitions hash.
 */
export const tasks = {
  async send_due_reminders(ctx: { db: { selectFrom: (table: string) => any }; log: { info: (object: object, message?: string) => void } }): Promise<void> {
    const due = await ctx.db.selectFrom('assign').select('id').where('id', '>', 0).execute();
    // ctx.log is a logger (info/warn/...), not a function: releases 1-3 called ctx.log(message).
    ctx.log.info({ assignments: due.length }, 'send_due_reminders: assignments checked');
  },
};

/** Handlers for db/events.ts: each course view lands in assign_event_log, in emission order. */
export const observers = {
  async onCourseViewed(
    event: { name: string; payload: { courseId?: number; seq?: number | null } | null },
    ctx: { db: { insertInto: (table: string) => any } },
  ): Promise<void> {
    await ctx.db
      .insertInto('assign_event_log')
      .values({ event: event.name, courseid: event.payload?.courseId ?? null, seq: event.payload?.seq ?? null })
      .execute();
  },
};
