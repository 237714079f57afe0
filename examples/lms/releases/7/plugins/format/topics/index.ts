/** format_topics routes, mounted under `/format_topics`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'format_topics', release: '1.1' }));
  app.get('/options', async () => ({
    numsections: 4,
    hiddensections: 'collapsed',
    coursedisplay: 'single-page',
    indentation: true,
  }));
}
