import type { UpgradeEvent } from './run.ts';

/**
 * One line of upgrade progress, as the CLI prints it and the admin page streams it.
 *
 * @example
 * ```ts
 * await runUpgrade({ database, code, onEvent: (event) => console.log(describeUpgradeEvent(event)) })
 * ```
 */
export function describeUpgradeEvent(event: UpgradeEvent): string {
  switch (event.kind) {
    case 'waiting-for-lock':
      return `Waiting for the running upgrade${event.holder ? ` (host ${event.holder.host}, pid ${event.holder.pid})` : ''}…`;
    case 'lock-acquired':
      return `Upgrade lock taken (${event.holder.mode} mode).`;
    case 'component-started':
      return event.action === 'install' ? `${event.component}: installing ${event.to}` : `${event.component}: upgrading ${event.from} -> ${event.to}`;
    case 'step-applied':
      return `${event.component}: step ${event.step} (${event.version}) applied in ${Math.round(event.durationMs)} ms`;
    case 'step-skipped':
      return `${event.component}: step ${event.step} (${event.version}) skipped: already applied under another version`;
    case 'ddl-retry':
      return `${event.component}: lock timeout on ${event.what}; every lock of the attempt released, retry ${event.attempt} in ${event.delayMs} ms`;
    case 'component-finished':
      return `${event.component}: now at ${event.version} (${Math.round(event.durationMs)} ms)`;
    case 'log':
      // Every line gets its component's name; a step that wrote it itself must not get it twice.
      return event.message.startsWith(`${event.component}: `) ? event.message : `${event.component}: ${event.message}`;
    case 'component-paused':
      return `${event.component}: paused (its routes answer 503; the rest of the site serves)`;
    case 'component-resumed':
      return `${event.component}: ${event.state === 'normal' ? 'back to normal' : 'in post-install (admins only) until `outageless maintenance disable --component ' + event.component + '`'} after a pause of ${(event.pausedMs / 1000).toFixed(2)} s`;
  }
}
