import { errorFactory } from '../errors.ts';
import type { BackgroundState } from './types.ts';

/**
 * Typed errors of batched background migrations. Codes are part of the public contract
 * (runbooks grep for them): never rename one.
 */

/** The `outageless background` subcommand that works from each state, for hints. */
function nextCommand(state: BackgroundState, name: string): string {
  switch (state) {
    case 'queued':
    case 'running':
      return `\`outageless background pause ${name}\`, \`outageless background finish ${name}\` or \`outageless background cancel ${name}\``;
    case 'paused':
      return `\`outageless background resume ${name}\` (or \`outageless background cancel ${name}\`)`;
    case 'failed':
      return `\`outageless background retry ${name}\` once the batch function is fixed (or \`outageless background cancel ${name}\`)`;
    case 'finished':
    case 'cancelled':
      return `no command: a ${state} migration is final (\`outageless background status\` lists the others)`;
  }
}

const PAST: Readonly<Record<string, string>> = { pause: 'paused', resume: 'resumed', retry: 'retried', cancel: 'cancelled', finish: 'finished' };

export const migrationErrors = {
  /** `pause`/`resume`/`retry`/`cancel`/`finish` asked for a change the lifecycle does not allow from the current state. */
  transitionRefused: errorFactory('OUTAGELESS_ERR_BACKGROUND_TRANSITION', (component: string, id: string, command: string, state: BackgroundState) => ({
    message: `background migration ${component}/${id} is ${state}: it cannot be ${PAST[command] ?? command} from there`,
    location: { component, step: id },
    hint: `From ${state} use ${nextCommand(state, `${component}/${id}`)}.`,
  })),
  /** No background migration of that name is queued in the site database. */
  unknownMigration: errorFactory('OUTAGELESS_ERR_UNKNOWN_BACKGROUND_MIGRATION', (component: string, id: string, known: readonly string[]) => ({
    message: `no background migration ${component}/${id} is queued on this site${known.length > 0 ? ` (queued: ${known.join(', ')})` : ''}`,
    location: { component, step: id },
    hint: 'Background migrations are queued when the upgrade reaches their step\'s version; `outageless background status` lists them. Name one as <component>/<id>.',
  })),
  /** The site's code on disk has no `phase: 'background'` step for a queued migration. */
  stepMissing: errorFactory('OUTAGELESS_ERR_BACKGROUND_STEP_MISSING', (component: string, id: string, file: string) => ({
    message: `background migration ${component}/${id} is queued, but ${file} declares no phase: 'background' step with id "${id}"`,
    location: { component, step: id, file },
    hint: `Deploy the code that declares it (a front or worker on older code leaves it to the others), or cancel it: \`outageless background cancel ${component}/${id}\`.`,
  })),
  /** A background step names a table that does not exist when its version is reached. */
  tableMissing: errorFactory('OUTAGELESS_ERR_BACKGROUND_TABLE_MISSING', (component: string, id: string, table: string) => ({
    message: `background migration ${component}/${id} names table "${table}", which does not exist when its step's version is reached`,
    location: { component, step: id, field: 'table' },
    hint: `Correct "table" of step ${id} in db/upgrade.ts of ${component}, or give the step a version after the step that creates ${table}.`,
  })),
  /** A batch kept failing down to a single key: the migration is marked failed. */
  migrationFailed: errorFactory('OUTAGELESS_ERR_BACKGROUND_FAILED', (component: string, id: string, key: number | null, error: string) => ({
    message: `background migration ${component}/${id} failed${key === null ? '' : ` at key ${key}`}: ${error}`,
    location: { component, step: id },
    hint: `Fix the batch function in db/upgrade.ts of ${component} (or the row with that key), deploy it, then \`outageless background retry ${component}/${id}\`: it resumes at that key.`,
  })),
} as const;
