/** mod_assign routes, mounted under `/mod_assign`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'mod_assign', release: '1.2' }));
  app.get('/capabilities', async () => ({
    capabilities: ['mod/assign:view', 'mod/assign:submit', 'mod/assign:grade'],
  }));
  app.get('/submission-types', async () => ({ types: ['assignsubmission_file', 'assignsubmission_onlinetext'] }));
}
