/** assignsubmission_onlinetext routes. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'assignsubmission_onlinetext', release: '1.0' }));
  app.get('/formats', async () => ({ formats: [{ id: 1, name: 'html' }, { id: 2, name: 'markdown' }] }));
}
