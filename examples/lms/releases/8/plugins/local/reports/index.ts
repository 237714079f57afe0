/** local_reports routes, mounted under `/local_reports`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'local_reports', release: '1.2' }));
  app.get('/reports', async () => ({
    reports: [
      { name: 'assign_overdue', source: 'mod_assign' },
      { name: 'quiz_attempts', source: 'mod_quiz' },
    ],
  }));
  app.get('/caches', async () => ({ caches: [{ name: 'report_cache', mode: 'application' }] }));
}
