/** block_calendar routes, mounted under `/block_calendar`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'block_calendar', release: '1.2' }));
  app.get('/config', async () => ({ lookahead: 21, maxevents: 10, startwday: 1 }));
}
