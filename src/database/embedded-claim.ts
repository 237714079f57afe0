import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { errors } from '../errors.ts';

/**
 * PGlite runs Postgres inside one process. Two processes opening the same data directory
 * would both write to it and corrupt it, so an embedded site is claimed with a lock file
 * beside the directory. A claim left by a process that died (SIGKILL, power loss) is taken
 * over: the pid in it no longer runs.
 *
 * This must never let two live processes hold one directory; it may, rarely, refuse a
 * directory whose old owner's pid was reused by an unrelated process (the fix is to stop
 * that process or delete the lock file).
 */
export interface EmbeddedClaim {
  release(): void;
}

interface ClaimRecord {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readClaim(path: string): ClaimRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ClaimRecord;
  } catch {
    return undefined; // unreadable or half-written: treated as stale
  }
}

/** Claims `dir` for this process, or throws `OUTAGELESS_ERR_EMBEDDED_IN_USE`. */
export function claimEmbeddedDirectory(dir: string): EmbeddedClaim {
  const path = `${dir}.lock`;
  mkdirSync(dirname(path), { recursive: true });
  const record: ClaimRecord = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(record));
      closeSync(fd);
      const release = () => {
        try {
          if (readClaim(path)?.pid === process.pid) unlinkSync(path);
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return {
        release() {
          process.off('exit', release);
          release();
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readClaim(path);
      const heldElsewhere = holder && holder.pid !== process.pid && (holder.host !== record.host || isAlive(holder.pid));
      if (heldElsewhere) throw errors.embeddedInUse(dir, holder.pid, holder.host);
      unlinkSync(path); // stale: its owner is gone
    }
  }
  throw errors.embeddedInUse(dir, -1, 'unknown');
}
