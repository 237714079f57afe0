import { readFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import { postgresVersion } from './postgres.ts';

/** The machine a run happened on, for the results header. */
export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memory: string;
  readonly os: string;
  readonly node: string;
  readonly postgres: string;
  /** 1-minute load average when the run started: a busy machine explains noisy numbers. */
  readonly loadAtStart: number;
}

async function cpuModel(): Promise<string> {
  try {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
    const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
    if (model) return model;
  } catch {
    // Not Linux: fall back to what Node reports.
  }
  return cpus()[0]?.model ?? 'unknown';
}

export async function describeMachine(serverUrl: string): Promise<Machine> {
  return {
    cpu: await cpuModel(),
    cores: cpus().length,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${type()} ${release()}`,
    node: process.version,
    postgres: await postgresVersion(serverUrl),
    loadAtStart: loadavg()[0] ?? 0,
  };
}
