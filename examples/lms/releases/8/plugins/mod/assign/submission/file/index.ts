/** assignsubmission_file routes. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'assignsubmission_file', release: '1.2' }));
  app.get('/limits', async () => ({ maxfiles: 20, maxbytes: 10 * 1024 * 1024 }));
}
