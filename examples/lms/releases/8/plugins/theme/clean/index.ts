/** theme_clean routes, mounted under `/theme_clean`. The theme has no tables (no db/ directory). */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'theme_clean', release: '1.1' }));
  app.get('/palette', async () => ({ primary: '#2563eb', background: '#ffffff', text: '#111827', muted: '#6b7280' }));
}
