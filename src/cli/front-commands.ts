import { resolve } from 'node:path';
import { Command } from 'commander';
import { errors, ExitCode } from '../errors.ts';
import { setSiteMaintenance } from '../state/flags.ts';
import { setComponentState } from '../state/component-state.ts';
import { discoverSite, type SiteCode } from '../component/discover.ts';
import { waitForInFlightJobs } from '../jobs/in-flight.ts';
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
            if (options.component) {
              const component = await pausableComponent(options.root, options.component);
              await setComponentState(database.db, component.name, 'maintenance', { reason: options.message ?? null });
              output(options).text(`${component.name} is in maintenance: its routes answer 503, its tasks are deferred and its events queue.`);
              // Events already being processed finish first; the pause is committed, so no new one starts.
              await waitForInFlightJobs(database, [component.name, ...subpluginsOf(component.name, component.code)], { timeoutMs: Number(options.drainTimeout) * 1000 });
              output(options).text('No event or task of it is running any more.');
              output(options).json({ component: component.name, state: 'maintenance' });
              return ExitCode.ok;
            }
            await setSiteMaintenance(database.db, true, options.message ?? null);
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
            if (options.component) {
              const component = await pausableComponent(options.root, options.component);
              await setComponentState(database.db, component.name, 'normal');
              output(options).text(`${component.name} is back to normal: queued events are replayed in order and deferred tasks run once.`);
              output(options).json({ component: component.name, state: 'normal' });
              return ExitCode.ok;
            }
            await setSiteMaintenance(database.db, false);
            output(options).text('Maintenance disabled.');
            output(options).json({ maintenance: { enabled: false, message: null } });
            return ExitCode.ok;
          }),
        ),
      ),
  );
  return command;
}

/** Finds `name` on disk and checks it may pause on its own. */
async function pausableComponent(root: string, name: string): Promise<{ name: string; code: SiteCode }> {
  const code = await discoverSite(root);
  const component = code.components.get(name);
  if (!component) throw errors.unknownComponent(name, [...code.components.keys()]);
  if (component.parent) throw errors.notDisableable(name, component.versionFile, `${name} is a subplugin: it pauses with its parent ${component.parent}`);
  if (name === 'core') throw errors.notDisableable(name, component.versionFile, 'core cannot pause on its own; use `outageless maintenance enable` for the whole site');
  if (!component.manifest.maintenance?.disableable) {
    throw errors.notDisableable(name, component.versionFile, `${component.versionFile} does not declare maintenance: { disableable: true }`);
  }
  return { name, code };
}

function subpluginsOf(name: string, code: SiteCode): string[] {
  return [...code.components.values()].filter((c) => c.parent === name).map((c) => c.name);
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
  const address = await app.listen({ port, host: options.host });
  output(options).text(`outageless front for ${resolve(options.root)} listening on ${address} (admin: ${address}/admin)`);
  output(options).json({ listening: address, front: app.outageless.id });
  await closed;
  return ExitCode.ok;
}
