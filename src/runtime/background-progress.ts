import type { BackgroundMigration, BackgroundState } from '../migrations/types.ts';

/**
 * How far a background migration has come, derived from its durable row alone (cursor, key
 * range, counts and timestamps), so `background status`, `status`, the admin page and the
 * "not upgraded yet" answer all agree on the numbers.
 */
export interface BackgroundProgress {
  /** `component/id`, the name every command takes. */
  readonly name: string;
  /** 0–100; 100 once finished (an empty table is done as soon as it is). */
  readonly percent: number;
  /** Keys of the range at or below the cursor, and keys in the whole range. */
  readonly keysDone: number;
  readonly keysTotal: number;
  /** Rows changed per second of the time it has run so far; null before its first batch. */
  readonly rowsPerSecond: number | null;
  /** Keys per second, the rate the ETA is computed from; null before its first batch. */
  readonly keysPerSecond: number | null;
  /** Seconds left at the current rate while it is queued or running; null otherwise. */
  readonly etaSeconds: number | null;
}

/** States in which the migration still moves on by itself. */
const MOVING: ReadonlySet<BackgroundState> = new Set(['queued', 'running']);

/**
 * The progress of `migration` at `now`. The rate counts from its first batch to its last
 * update (or to now while running), so a paused migration keeps the rate it had.
 *
 * @example
 * ```ts
 * const progress = backgroundProgress(migration)
 * console.log(`${progress.name} ${progress.percent.toFixed(1)}% ETA ${formatDuration(progress.etaSeconds)}`)
 * ```
 */
export function backgroundProgress(migration: BackgroundMigration, now: Date = new Date()): BackgroundProgress {
  const name = `${migration.component}/${migration.id}`;
  const { minKey, maxKey, cursor } = migration;
  const keysTotal = minKey === null || maxKey === null ? 0 : Math.max(0, maxKey - minKey + 1);
  const keysDone = migration.state === 'finished'
    ? keysTotal
    : minKey === null || maxKey === null || cursor === null
      ? 0
      : Math.min(keysTotal, Math.max(0, Math.min(cursor, maxKey) - minKey + 1));
  const percent = migration.state === 'finished' ? 100 : keysTotal === 0 ? 0 : (keysDone / keysTotal) * 100;
  const end = migration.finishedAt ?? (migration.state === 'running' ? now : migration.updatedAt);
  const seconds = migration.startedAt ? (end.getTime() - migration.startedAt.getTime()) / 1000 : 0;
  const ran = migration.batches > 0 && seconds > 0;
  const rowsPerSecond = ran ? migration.rowsChanged / seconds : null;
  const keysPerSecond = ran && keysDone > 0 ? keysDone / seconds : null;
  const etaSeconds = MOVING.has(migration.state) && keysPerSecond ? (keysTotal - keysDone) / keysPerSecond : null;
  return { name, percent, keysDone, keysTotal, rowsPerSecond, keysPerSecond, etaSeconds };
}

/**
 * A short human duration: `2.5 s`, `45 s`, `12 min 5 s`, `3 h 20 min`; `-` when unknown.
 *
 * @example
 * ```ts
 * formatDuration(725) // => '12 min 5 s'
 * ```
 */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '-';
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  const minutes = Math.floor((s % 3600) / 60);
  return `${Math.floor(s / 3600)} h${minutes ? ` ${minutes} min` : ''}`;
}

/**
 * A text progress bar of `width` cells: `[██████░░░░]`.
 *
 * @example
 * ```ts
 * progressBar(50, 10) // => '[█████░░░░░]'
 * ```
 */
export function progressBar(percent: number, width = 24): string {
  const filled = Math.round((Math.min(100, Math.max(0, percent)) / 100) * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}

/** The range, cursor and counts of a migration in one line, for text output. */
export function describeRange(migration: BackgroundMigration): string {
  if (migration.minKey === null || migration.maxKey === null) return `${migration.table}.${migration.key}: empty at queue time`;
  return `${migration.table}.${migration.key} ${migration.minKey}..${migration.maxKey}, cursor ${migration.cursor ?? '-'}`;
}

/** A migration and its progress as plain JSON (dates as ISO strings). */
export function backgroundToJson(migration: BackgroundMigration, now: Date = new Date()): Record<string, unknown> {
  const progress = backgroundProgress(migration, now);
  return {
    name: progress.name,
    component: migration.component,
    id: migration.id,
    version: migration.version,
    table: migration.table,
    key: migration.key,
    state: migration.state,
    minKey: migration.minKey,
    maxKey: migration.maxKey,
    cursor: migration.cursor,
    percent: Math.round(progress.percent * 10) / 10,
    keysDone: progress.keysDone,
    keysTotal: progress.keysTotal,
    batches: migration.batches,
    rowsChanged: migration.rowsChanged,
    batchSize: migration.batchSize,
    rowsPerSecond: progress.rowsPerSecond === null ? null : Math.round(progress.rowsPerSecond),
    etaSeconds: progress.etaSeconds === null ? null : Math.round(progress.etaSeconds),
    error: migration.error,
    queuedAt: migration.queuedAt.toISOString(),
    startedAt: migration.startedAt?.toISOString() ?? null,
    finishedAt: migration.finishedAt?.toISOString() ?? null,
    updatedAt: migration.updatedAt.toISOString(),
  };
}
