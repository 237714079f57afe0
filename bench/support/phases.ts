/**
 * Where the time of `outageless upgrade --is-pending` goes, measured inside one process.
 *
 *   node bench/support/phases.ts <mode> <root> <database-url>
 *
 * Prints one JSON object of durations in milliseconds. Modes:
 * - `cli`: what the CLI does, in its order, with a clock between the steps.
 * - `import-parallel` / `import-sequential`: after loading `outageless` (dist/index.js), import
 *   every component's version.ts, all started at once or one after another. discoverSite starts
 *   them all at once but after a stat each, so it lands between the two.
 * - `hash`: hash every component's db/ directory (the other half of discovery).
 *
 * This script is TypeScript itself, so Node loads its type stripper before `boot` ends; the
 * CLI pays that on the first version.ts instead.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const MODES = ['cli', 'import-parallel', 'import-sequential', 'hash'] as const;
type Mode = (typeof MODES)[number];

const dist = (path: string): string => pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', path)).href;

function stopwatch(): { lap(label: string): void; phases: Record<string, number> } {
  const phases: Record<string, number> = {};
  let mark = performance.now();
  return {
    phases,
    lap(label) {
      const now = performance.now();
      phases[label] = now - mark;
      mark = now;
    },
  };
}

async function cli(root: string, databaseUrl: string): Promise<Record<string, number>> {
  const boot = performance.now(); // since the process started
  const { lap, phases } = stopwatch();
  await import(dist('cli/main.js'));
  lap('import dist/cli/main.js (commander; each command loads on use)');
  await import(dist('cli/upgrade-command.js'));
  lap('import dist/cli/upgrade-command.js (kysely, pg, zod, discovery, planning)');
  const { discoverSite } = (await import(dist('component/discover.js'))) as typeof import('../../src/component/discover.ts');
  const { openDatabase } = (await import(dist('database/open.js'))) as typeof import('../../src/database/open.ts');
  const { readPlan } = (await import(dist('plan/read.js'))) as typeof import('../../src/plan/read.ts');
  const { formatPlan } = (await import(dist('cli/format.js'))) as typeof import('../../src/cli/format.ts');
  lap('import the functions used below (already loaded)');
  const code = await discoverSite(root);
  lap(`discoverSite: ${code.components.size} components (with the discovery cache the previous run left)`);
  const database = await openDatabase(databaseUrl);
  lap('openDatabase: pool and first connection');
  const { plan } = await readPlan(database.db, { code });
  lap(`readPlan: ${plan.pending.length} pending`);
  formatPlan(plan);
  lap('formatPlan');
  await database.close();
  lap('close the database');
  return { 'node boot, to the first line of the script': boot, ...phases, 'total, process start to end': performance.now() };
}

/** core/ and plugins/<type>/<name>/ (the generated site has no subplugins). */
async function componentDirs(root: string): Promise<string[]> {
  const dirs = [join(root, 'core')];
  for (const type of (await readdir(join(root, 'plugins'))).sort()) {
    for (const name of (await readdir(join(root, 'plugins', type))).sort()) dirs.push(join(root, 'plugins', type, name));
  }
  return dirs;
}

async function probe(mode: Exclude<Mode, 'cli'>, root: string): Promise<Record<string, number>> {
  const dirs = await componentDirs(root);
  const { lap, phases } = stopwatch();
  if (mode === 'hash') {
    const { hashDefinitions } = (await import(dist('component/definitions-hash.js'))) as typeof import('../../src/component/definitions-hash.ts');
    lap('ignored');
    await Promise.all(dirs.map((dir) => hashDefinitions(dir)));
    lap(`probe: hash ${dirs.length} db/ directories`);
  } else {
    await import(dist('index.js'));
    lap('ignored');
    const urls = dirs.map((dir) => pathToFileURL(join(dir, 'version.ts')).href);
    if (mode === 'import-parallel') {
      await Promise.all(urls.map((url) => import(url)));
      lap(`probe: import the ${dirs.length} version.ts, all started at once`);
    } else {
      for (const url of urls) await import(url);
      lap(`probe: import ${dirs.length} version.ts one after another`);
    }
  }
  delete phases.ignored;
  return phases;
}

const [mode, root, databaseUrl] = process.argv.slice(2);
if (!MODES.includes(mode as Mode) || !root || !databaseUrl) {
  throw new Error(`usage: node bench/support/phases.ts <${MODES.join('|')}> <root> <database-url>`);
}
const phases = mode === 'cli' ? await cli(root, databaseUrl) : await probe(mode as Exclude<Mode, 'cli'>, root);
process.stdout.write(`${JSON.stringify(phases)}\n`);
