/** mod_quiz routes, mounted under `/mod_quiz`. Static JSON for now: no database access yet. */
export default async function routes(app: { get: (path: string, handler: () => unknown) => void }): Promise<void> {
  app.get('/', async () => ({ component: 'mod_quiz', release: '1.2' }));
  app.get('/capabilities', async () => ({ capabilities: ['mod/quiz:view', 'mod/quiz:attempt', 'mod/quiz:grade'] }));
  app.get('/attempt-states', async () => ({
    states: ['inprogress', 'overdue', 'finished', 'abandoned'],
    default: 'inprogress',
  }));
  app.get('/grading', async () => ({ defaultgrade: 0, decimalpoints: 2 }));
}
