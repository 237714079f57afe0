/**
 * A Fastify app serving GET /hello → 'ok' on 127.0.0.1, for bench/guard.ts.
 *
 *   node bench/support/hello-server.ts plain
 *   node bench/support/hello-server.ts guarded <root> <database-url>
 *
 * `guarded` registers the outageless plugin (compiled, as `outageless/fastify` resolves) on the
 * site first; /hello is a host-app route, so the guard runs for it as core's.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';

const [mode, root, database] = process.argv.slice(2);
const app = Fastify({ logger: { level: 'warn' } });
if (mode === 'guarded') {
  if (!root || !database) throw new Error('usage: hello-server.ts guarded <root> <database-url>');
  const { outageless } = (await import(pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', 'fastify', 'plugin.js')).href)) as typeof import('../../src/fastify/plugin.ts');
  await app.register(outageless, { root, database });
} else if (mode !== 'plain') {
  throw new Error(`unknown mode ${mode}`);
}
app.get('/hello', async () => 'ok');
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`hello-server ${mode} listening on ${address}\n`);
const stop = () => void app.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
