/**
 * Core routes, mounted under `/`. Static JSON, plus one route that emits an event: viewing a
 * course emits `course_viewed` (observed by mod_assign from release 4 on).
 */
interface CoreApp {
  get: (path: string, handler: () => unknown) => void;
  post: (path: string, handler: (request: { params: { id: string }; body?: { seq?: number }; server: { outagelessJobs?: { emit: (event: string, payload: unknown) => Promise<{ jobs: { component: string; id: string }[] }> } } }) => unknown) => void;
}

export default async function routes(app: CoreApp): Promise<void> {
  app.get('/', async () => ({ component: 'core', release: '1.3' }));
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/about', async () => ({
    site: 'Outageless Learning',
    pluginTypes: ['theme', 'auth', 'format', 'block', 'mod', 'local'],
  }));
  app.post('/course/:id/view', async (request) => {
    const courseId = Number(request.params.id);
    const seq = request.body?.seq ?? null;
    const result = await request.server.outagelessJobs?.emit('course_viewed', { courseId, seq });
    return { event: 'course_viewed', courseId, seq, queuedFor: result?.jobs.map((job) => job.component) ?? [] };
  });
}
