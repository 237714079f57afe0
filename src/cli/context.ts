import { resolve } from 'node:path';
import type { Command } from 'commander';
import { openDatabase, type SiteDatabase } from '../database/open.ts';
import { resolveDatabaseUrl } from '../database/url.ts';
import { ExitCode, type ExitCodeValue } from '../errors.ts';

/** Options every site command takes. */
export interface SiteOptions {
  readonly root: string;
  readonly database?: string;
  readonly json?: boolean;
}

/** Adds `--root`, `--database` and `--json` to a command. */
export function withSiteOptions(command: Command): Command {
  return command
    .option('--root <dir>', 'application root holding core/ and plugins/', process.cwd())
    .option('--database <url>', 'postgres://…, postgresql://…, pglite://<dir> (default: $OUTAGELESS_DATABASE_URL, $DATABASE_URL, <root>/.outageless/db)')
    .option('--json', 'machine-readable output');
}

/** Opens the site database named by the options, runs `fn`, and always closes it. */
export async function withDatabase<T>(options: SiteOptions, fn: (database: SiteDatabase) => Promise<T>): Promise<T> {
  const database = await openDatabase(resolveDatabaseUrl({ root: resolve(options.root), option: options.database }));
  try {
    return await fn(database);
  } finally {
    await database.close();
  }
}

/** Output helpers that respect `--json`: text goes to stdout, JSON is one document. */
export interface Output {
  text(message: string): void;
  json(value: unknown): void;
}

export function output(options: SiteOptions): Output {
  return {
    text: (message) => {
      if (!options.json) process.stdout.write(`${message}\n`);
    },
    json: (value) => {
      if (options.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    },
  };
}

/** Commands return their exit code; main sets it once they have closed everything. */
export type CommandResult = ExitCodeValue;
export const ok: CommandResult = ExitCode.ok;
