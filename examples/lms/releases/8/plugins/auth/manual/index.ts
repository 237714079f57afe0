/** auth_manual routes, mounted under `/auth_manual`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'auth_manual', release: '1.1' }));
  app.get('/policy', async () => ({ minlength: 8, digits: 1, lowercase: 1, uppercase: 1 }));
  app.get('/reset', async () => ({ enabled: true, tokenlifetime: 1800 }));
}
