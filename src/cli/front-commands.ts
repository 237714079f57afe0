import { resolve } from 'node:path';
import { Command } from 'commander';
import { errors, ExitCode } from '../errors.ts';
import { discoverSite } from '../component/discover.ts';
import { cliActor, runOperatorAction } from '../runtime/operator-actions.ts';
import { output, withDatabase, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/** `outageless maintenance enable|disable [--message <text>]`: whole-site maintenance. */
export function maintenanceCommand(run: (result: Promise<CommandResult>) => void): Command {
  const command = new Command('maintenance').description('turn whole-site maintenance on or off; fronts answer 503 within moments');
  command.addCommand(
    withSiteOptions(new Command('enable'))
      .description('put the whole site into maintenance (admins keep the admin area)')
      .option('--message <text>', 'message shown on the 503 page')
      .option('--component <name>', 'pause only this component (its manifest must say maintenance: { disableable: true })')
      .option('--drain-timeout <seconds>', 'how long to wait for its events already being processed', '60')
      .action((options: SiteOptions & { message?: string; component?: string; drainTimeout: string }) =>
        run(
          withDatabase(options, async (database) => {
            // Whole-site maintenance never reads the code: it must work while a component is broken.
            const context = { database, loadCode: () => discoverSite(options.root), actor: cliActor() };
            if (options.component) {
              const component = options.component;
              const drainSeconds = Number(options.drainTimeout);
              if (!Number.isFinite(drainSeconds) || drainSeconds < 0) throw errors.usage(`--drain-timeout expects a number of seconds, got "${options.drainTimeout}"`);
              await runOperatorAction(
                { ...context, onPaused: () => output(options).text(`${component} is in maintenance: its routes answer 503, its tasks are deferred and its events queue.`) },
                { kind: 'pause', component, reason: options.message ?? null, drainTimeoutMs: drainSeconds * 1000 },
              );
              output(options).text('No event or task of it is running any more.');
              output(options).json({ component, state: 'maintenance' });
              return ExitCode.ok;
            }
            await runOperatorAction(context, { kind: 'maintenance-on', message: options.message ?? null });
            output(options).text(`Maintenance enabled${options.message ? `: ${options.message}` : ''}.`);
            output(options).json({ maintenance: { enabled: true, message: options.message ?? null } });
            return ExitCode.ok;
          }),
        ),
      ),
  );
  command.addCommand(
    withSiteOptions(new Command('disable'))
      .description('end whole-site maintenance, or one component\'s (maintenance or post-install)')
      .option('--component <name>', 'return only this component to normal')
      .action((options: SiteOptions & { component?: string }) =>
        run(
          withDatabase(options, async (database) => {
            const context = { database, loadCode: () => discoverSite(options.root), actor: cliActor() };
            if (options.component) {
              await runOperatorAction(context, { kind: 'resume', component: options.component });
              output(options).text(`${options.component} is back to normal: queued events are replayed in order and deferred tasks run once.`);
              output(options).json({ component: options.component, state: 'normal' });
              return ExitCode.ok;
            }
            await runOperatorAction(context, { kind: 'maintenance-off' });
            output(options).text('Maintenance disabled.');
            output(options).json({ maintenance: { enabled: false, message: null } });
            return ExitCode.ok;
          }),
        ),
      ),
  );
  return command;
}

interface ServeOptions extends SiteOptions {
  readonly port: string;
  readonly host: string;
  readonly logLevel: string;
}

/**
 * `outageless serve`: a ready-made front. Fastify with the outageless plugin and every
 * component's routes; SIGTERM stops taking requests, finishes those in flight and leaves
 * the front registry.
 */
export function serveCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('serve'))
    .description('serve the site: every component under /<component> (core under /), guarded; admin at /admin')
    .option('--port <n>', 'port to listen on', '3000')
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action((options: ServeOptions) => run(serve(options)));
}

async function serve(options: ServeOptions): Promise<CommandResult> {
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw errors.usage(`--port expects a port number, got "${options.port}"`);
  // Loaded here so the other commands never pay for Fastify.
  const { default: Fastify } = await import('fastify');
  const { outageless } = await import('../fastify/plugin.ts');
  const app = Fastify({ logger: { level: options.logLevel } });
  await app.register(outageless, {
    root: resolve(options.root),
    ...(options.database ? { database: options.database } : {}),
    ...(process.env.OUTAGELESS_ADMIN_SECRET ? { adminSecret: process.env.OUTAGELESS_ADMIN_SECRET } : {}),
  });
  const closed = new Promise<void>((resolveClosed) => {
    const stop = (signal: string) => {
      app.log.info(`${signal}: closing`);
      void app.close().then(resolveClosed);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  let address: string;
  try {
    address = await app.listen({ port, host: options.host });
  } catch (error) {
    // Started but not listening: leave the front registry and the database before exiting,
    // or this process would stay alive as a "live" front that serves nothing.
    await app.close().catch(() => {});
    throw errors.listenFailed(options.host, port, error);
  }
  output(options).text(`outageless front for ${resolve(options.root)} listening on ${address} (admin: ${address}/admin)`);
  output(options).json({ listening: address, front: app.outageless.id });
  await closed;
  return ExitCode.ok;
}
