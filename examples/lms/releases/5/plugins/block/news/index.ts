/** block_news routes, mounted under `/block_news`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'block_news', release: '1.3' }));
  app.get('/config', async () => ({ perpage: 5, showauthor: true }));
}
