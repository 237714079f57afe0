/**
 * Where the time of `outageless upgrade --is-pending` goes, measured inside one process.
 * Run by bench/plan.ts as `node bench/support/phases.ts <root> <database-url>`; prints one
 * JSON object of phase durations in milliseconds.
 *
 * It does what the CLI does, in the same order, with a clock between the steps; then, as
 * separate probes, the two halves of discovery on their own (importing every version.ts under
 * fresh URLs, and hashing every db/ directory). This script is TypeScript itself, so Node
 * loads its type stripper before `boot` ends; the CLI pays that on the first version.ts.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const boot = performance.now(); // since the process started
const [root, databaseUrl] = process.argv.slice(2);
if (!root || !databaseUrl) throw new Error('usage: node bench/support/phases.ts <root> <database-url>');

const dist = (path: string): string => pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', path)).href;
const phases: Record<string, number> = { 'node boot (to first line of script)': boot };
let mark = performance.now();
const lap = (label: string): void => {
  const now = performance.now();
  phases[label] = now - mark;
  mark = now;
};

await import(dist('cli/main.js'));
lap('import dist/cli/main.js (commander, kysely, pg, zod, all of src)');
const { discoverSite, openDatabase, readPlan } = (await import(dist('index.js'))) as typeof import('../../src/index.ts');
const { formatPlan } = (await import(dist('cli/format.js'))) as typeof import('../../src/cli/format.ts');
lap('import dist/index.js (on top of the CLI)');
const code = await discoverSite(root);
lap(`discoverSite (${code.components.size} components)`);
const database = await openDatabase(databaseUrl);
lap('openDatabase (pool + first connection)');
const { plan } = await readPlan(database.db, { code });
lap(`readPlan (${plan.pending.length} pending)`);
formatPlan(plan);
lap('formatPlan');
await database.close();
lap('close database');
phases['total in process'] = performance.now();

// Probes: the two halves of discovery, each on its own.
const { hashDefinitions } = (await import(dist('component/definitions-hash.js'))) as typeof import('../../src/component/definitions-hash.ts');
const dirs = [...code.components.values()].map((component) => component.dir);
mark = performance.now();
await Promise.all(dirs.map((dir) => import(`${pathToFileURL(join(dir, 'version.ts')).href}?probe=${Date.now()}`)));
lap(`probe: import ${dirs.length} version.ts (fresh URLs)`);
await Promise.all(dirs.map((dir) => hashDefinitions(dir)));
lap(`probe: hash ${dirs.length} db/ directories`);
await Promise.all(dirs.map((dir) => readdir(dir)));
lap(`probe: readdir ${dirs.length} component directories`);

process.stdout.write(`${JSON.stringify(phases)}\n`);
