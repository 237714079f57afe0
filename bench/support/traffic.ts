/**
 * Steady database traffic for bench/online-ddl.ts: point reads by id, single-row updates and
 * inserts on one table, written for the table as it was before the step ("old code"), issued
 * open-loop at a fixed rate through a real pg Pool, each query timed.
 *
 * Open-loop on purpose: a request is issued on its tick whether or not earlier ones came back,
 * and its latency runs from the moment it is handed to the pool. When the table is locked, the
 * pool's four connections block and later requests wait for a connection, and that wait is
 * counted, as an application with a pool of four would see it. A closed loop would stop
 * issuing during a stall and hide most of it.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { sleep } from './serve.ts';

export type RequestKind = 'read' | 'update' | 'insert';

export interface RequestSample {
  readonly kind: RequestKind;
  /** performance.now() when the query was handed to the pool. */
  readonly start: number;
  /** performance.now() when it answered or failed. */
  readonly end: number;
  /** The error's SQLSTATE and message, when it failed. */
  readonly error?: string;
}

export interface TrafficOptions {
  /** Ids 1…rows exist; reads and updates pick one at random. */
  readonly rows: number;
  readonly table: string;
  readonly ratePerSecond?: number;
  readonly connections?: number;
}

export interface Traffic {
  /** Every request so far, in the order they completed. */
  readonly samples: readonly RequestSample[];
  readonly ratePerSecond: number;
  readonly connections: number;
  /** Stops issuing, waits for the requests in flight, closes the pool. */
  stop(): Promise<void>;
}

/** The statements old code runs: they name only the columns the table had before any step. */
export function oldCodeQueries(table: string): Readonly<Record<RequestKind, string>> {
  const t = `"${table.replaceAll('"', '""')}"`;
  return {
    read: `select id, name, score from ${t} where id = $1`,
    update: `update ${t} set score = score + 1 where id = $1`,
    insert: `insert into ${t} (name, score) values ($1, $2)`,
  };
}

/** Half reads, three in ten updates, two in ten inserts. */
function pickKind(): RequestKind {
  const roll = Math.random();
  return roll < 0.5 ? 'read' : roll < 0.8 ? 'update' : 'insert';
}

/**
 * Starts the traffic. Requests go out every `1000 / ratePerSecond` ms on a schedule computed
 * from the start, so a late timer does not lower the rate.
 *
 * @example
 * ```ts
 * const traffic = startTraffic(url, { table: 't', rows: 1_000_000 })
 * const from = performance.now(); await step(); const to = performance.now()
 * console.log(windowStats(traffic.samples, from, to).longestMs)
 * await traffic.stop()
 * ```
 */
export function startTraffic(connectionString: string, options: TrafficOptions): Traffic {
  const ratePerSecond = options.ratePerSecond ?? 200;
  const connections = options.connections ?? 4;
  // No connection or statement timeout: a stall must show as a long request, not an error.
  const pool = new pg.Pool({ connectionString, max: connections, application_name: 'outageless-bench-traffic' });
  pool.on('error', () => {}); // an idle client's error; the next query reports it
  const queries = oldCodeQueries(options.table);
  const samples: RequestSample[] = [];
  const inFlight = new Set<Promise<void>>();
  let running = true;

  const issue = (kind: RequestKind): void => {
    const id = 1 + Math.floor(Math.random() * options.rows);
    const params = kind === 'insert' ? [`traffic ${id}`, id % 1000] : [id];
    const start = performance.now();
    const request = pool.query(queries[kind], params).then(
      () => { samples.push({ kind, start, end: performance.now() }); },
      (error: unknown) => {
        const { code, message } = error as { code?: string; message?: string };
        samples.push({ kind, start, end: performance.now(), error: `${code ?? '?'} ${message ?? String(error)}` });
      },
    );
    inFlight.add(request);
    void request.finally(() => inFlight.delete(request));
  };

  const interval = 1000 / ratePerSecond;
  const loop = (async () => {
    const origin = performance.now();
    for (let tick = 0; running; tick++) {
      const due = origin + tick * interval;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (running) issue(pickKind());
    }
  })();

  return {
    samples,
    ratePerSecond,
    connections,
    async stop() {
      running = false;
      await loop;
      await Promise.all([...inFlight]);
      await pool.end();
    },
  };
}

export interface WindowStats {
  /** Requests whose lifetime overlaps the window. */
  readonly requests: number;
  /** The longest of those requests, in ms: the stall. */
  readonly longestMs: number;
  readonly over250: number;
  /** The longest request of each kind: a SHARE lock blocks writes, ACCESS EXCLUSIVE reads too. */
  readonly longestByKind: Readonly<Record<RequestKind, number>>;
  /** The longest time without any request completing, from the window's start to the first completion after its end. */
  readonly longestGapMs: number;
  readonly errors: number;
  /** Distinct error messages with their counts, for the report. */
  readonly errorMessages: ReadonlyMap<string, number>;
}

/** Latency and gaps of the requests that overlap [from, to]; errors of those that ended by `errorsUntil` (defaults to `to`). */
export function windowStats(samples: readonly RequestSample[], from: number, to: number, errorsUntil = to): WindowStats {
  const overlapping = samples.filter((s) => s.end >= from && s.start <= to);
  let longestMs = 0;
  let over250 = 0;
  const longestByKind: Record<RequestKind, number> = { read: 0, update: 0, insert: 0 };
  for (const sample of overlapping) {
    const latency = sample.end - sample.start;
    if (latency > longestMs) longestMs = latency;
    if (latency > longestByKind[sample.kind]) longestByKind[sample.kind] = latency;
    if (latency > 250) over250++;
  }
  const ends = samples.map((s) => s.end).filter((end) => end >= from).sort((a, b) => a - b);
  const firstAfter = ends.find((end) => end > to) ?? to;
  let longestGapMs = 0;
  let previous = from;
  for (const end of ends) {
    if (end > firstAfter) break;
    longestGapMs = Math.max(longestGapMs, end - previous);
    previous = end;
  }
  longestGapMs = Math.max(longestGapMs, firstAfter - previous);
  const errorMessages = new Map<string, number>();
  let errors = 0;
  for (const sample of samples) {
    if (!sample.error || sample.end < from || sample.start > errorsUntil) continue;
    errors++;
    errorMessages.set(sample.error, (errorMessages.get(sample.error) ?? 0) + 1);
  }
  return { requests: overlapping.length, longestMs, over250, longestByKind, longestGapMs, errors, errorMessages };
}
