/** mod_assign routes, mounted under `/mod_assign`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'mod_assign', release: '1.1' }));
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
  async send_due_reminders(ctx: { db: { selectFrom: (table: string) => any }; log: { info: (message: string) => void } }): Promise<void> {
    const due = await ctx.db.selectFrom('assign').select('id').where('id', '>', 0).execute();
    ctx.log.info(`send_due_reminders: ${due.length} assignment(s) checked`);
  },
};
