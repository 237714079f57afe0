/** Core routes, mounted under `/`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'core', release: '1.1' }));
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/about', async () => ({
    site: 'Outageless Learning',
    pluginTypes: ['theme', 'auth', 'format', 'block', 'mod', 'local'],
  }));
}
