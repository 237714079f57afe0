import { sql, type Kysely } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOutagelessError } from '../errors.ts';
import type { UpgradeEvent } from './run.ts';
import { describeUpgradeEvent } from './describe-event.ts';

/**
 * Records an upgrade run and its progress in outageless_upgrade_run / outageless_upgrade_event,
 * so any front shows a run of any process live, and `outageless history` lists it later.
 *
 * Every write goes through one queue on an executor that commits on its own (never a step's
 * transaction, which may roll back), and nothing waits for it but the run's last line: a slow
 * or failing database costs the run at most {@link FINISH_WAIT_MS} at its end, never a step,
 * and a failure is logged, never thrown.
 */

/** How the run row describes the run's mode: `staged` is an online run that pauses components. */
export type RecordedMode = 'maintenance' | 'online' | 'staged';

export type RunOutcome = 'succeeded' | 'failed' | 'nothing';

export interface RunStart {
  readonly runId: string;
  readonly mode: RecordedMode;
  readonly phase: 'all' | 'pre' | 'post';
  /** `cli`, `web`, or `api` when runUpgrade was called without saying. */
  readonly startedBy: string;
  readonly host: string;
  readonly pid: number;
}

export interface RunEnd {
  readonly outcome: RunOutcome;
  readonly durationMs: number;
  readonly error?: unknown;
}

export interface RunRecorder {
  /** Queues one progress line; returns at once. */
  record(event: UpgradeEvent): void;
  /** Queues the outcome and waits (bounded) for the queue to drain. Never throws. */
  finish(end: RunEnd): Promise<void>;
}

/** Runs that keep their events; older runs keep their row and their upgrade log rows only. */
export const RUNS_WITH_EVENTS = 50;
/** Events one run records; a run past it records one line saying so, then only its end. */
export const MAX_EVENTS_PER_RUN = 5000;
/** The longest the end of a run waits for its progress writes. */
export const FINISH_WAIT_MS = 5000;

/** The line a run's lock-acquired event shows: the page's first line says the run has begun, and by whom. */
function startLine(start: RunStart, event: Extract<UpgradeEvent, { kind: 'lock-acquired' }>): string {
  return `Upgrade started (${event.holder.mode} mode${start.mode === 'staged' ? ', staged' : ''}) by ${start.startedBy} on ${start.host}, pid ${start.pid}`;
}

function endLine(end: RunEnd): string {
  if (end.outcome === 'nothing') return 'Nothing to do';
  if (end.outcome === 'succeeded') return `Upgrade complete in ${(end.durationMs / 1000).toFixed(2)} s`;
  return `Upgrade failed after ${(end.durationMs / 1000).toFixed(2)} s: ${errorText(end.error)}`;
}

/** `CODE: message` of an outageless error, else the message. */
export function errorText(error: unknown): string {
  return isOutagelessError(error) ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
}

/**
 * Starts recording a run: its row is queued at once (with the pruning of old runs' events).
 *
 * @example
 * ```ts
 * const recorder = startRunRecorder(database.autocommit, { runId, mode: 'online', phase: 'all', startedBy: 'cli', host, pid }, console.warn)
 * recorder.record({ kind: 'component-started', component: 'core', action: 'upgrade', from: 1, to: 2 })
 * await recorder.finish({ outcome: 'succeeded', durationMs: 1200 })
 * ```
 */
export function startRunRecorder(db: Kysely<any>, start: RunStart, warn: (message: string) => void): RunRecorder {
  let queue: Promise<void> = Promise.resolve();
  let failures = 0;
  let seq = 0;
  /** Progress lines recorded so far (the cap counts these; the end line is always written). */
  let lines = 0;
  const enqueue = (what: string, write: () => Promise<unknown>) => {
    queue = queue.then(write).then(
      () => {},
      (error: unknown) => {
        // One warning per run, then a count at the end: a database that refuses every write
        // must not flood the log of the run it is already slowing down.
        if (failures++ === 0) warn(`outageless: could not record upgrade progress (${what}): ${errorText(error)}; the upgrade goes on`);
      },
    );
  };
  // Lines wait in a buffer while a write is in flight, and go in one INSERT after it: a run that
  // emits lines faster than the database commits them (a loaded server, a hundred quick steps)
  // keeps a short queue, so its outcome is written before the lock is released, not after.
  let buffered: { run_id: string; seq: number; at: Date; kind: string; component: string | null; message: string }[] = [];
  const insertEvent = (kind: string, component: string | null, message: string) => {
    buffered.push({ run_id: start.runId, seq: ++seq, at: new Date(), kind, component, message });
    if (buffered.length > 1) return;
    enqueue(`event ${kind}`, () => {
      const rows = buffered;
      buffered = [];
      return db.insertInto('outageless_upgrade_event').values(rows).execute();
    });
  };

  const startedAt = new Date();
  enqueue('run start', () =>
    db.insertInto('outageless_upgrade_run').values({
      run_id: start.runId, mode: start.mode, phase: start.phase, started_by: start.startedBy, host: start.host, pid: start.pid, started_at: startedAt,
    }).execute());
  // Bounded: only the newest runs keep their lines (their rows and the upgrade log stay).
  enqueue('pruning old events', () =>
    sql`delete from outageless_upgrade_event
         where run_id not in (select run_id from outageless_upgrade_run order by started_at desc limit ${RUNS_WITH_EVENTS})`.execute(db));

  return {
    record(event) {
      lines += 1;
      if (lines === MAX_EVENTS_PER_RUN) insertEvent('truncated', null, `… further progress of this run is not recorded (more than ${MAX_EVENTS_PER_RUN} lines)`);
      if (lines >= MAX_EVENTS_PER_RUN) return;
      const message = event.kind === 'lock-acquired' ? startLine(start, event) : describeUpgradeEvent(event);
      insertEvent(event.kind, 'component' in event ? event.component : null, message);
    },
    async finish(end) {
      const row = {
        ended_at: new Date(),
        outcome: end.outcome,
        error_code: end.error === undefined ? null : isOutagelessError(end.error) ? end.error.code : 'UNEXPECTED',
        error_message: end.error === undefined ? null : end.error instanceof Error ? end.error.message : String(end.error),
      };
      // The end line always, past the cap too: the page shows how the run ended.
      insertEvent('run-finished', null, endLine(end));
      enqueue('run end', () => db.updateTable('outageless_upgrade_run').set(row).where('run_id', '=', start.runId).execute());
      const drained = await Promise.race([queue.then(() => true), sleep(FINISH_WAIT_MS, false, { ref: false })]);
      if (!drained) warn(`outageless: upgrade progress still being written after ${FINISH_WAIT_MS} ms; the run has ended anyway`);
      else if (failures > 1) warn(`outageless: ${failures} progress writes of run ${start.runId} failed`);
    },
  };
}
