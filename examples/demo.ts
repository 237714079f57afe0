/**
 * `npm run demo`: walks a fresh embedded copy of the example site from release 1 to 3,
 * deploying each release's code over the last as an operator would, and printing every
 * command, its plan (classes and reasons) and its exit code.
 */
import { spawnSync } from 'node:child_process';
import Fastify, { type FastifyInstance } from 'fastify';
import { openDatabase, resolveDatabaseUrl, setSiteMaintenance } from 'outageless/host';
import { outageless } from 'outageless/fastify';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const here = import.meta.dirname;
const bin = join(here, '..', 'bin', 'outageless.js');
const releases = join(here, 'lms', 'releases');
// Inside the repository, so plugin files resolve `import 'outageless'` to this package.
const site = join(here, 'lms', '.work', 'demo-site');

const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);

function deploy(release: number): void {
  console.log(bold(`\n=== Deploying release ${release} of examples/lms (code only; the database keeps its state) ===`));
  rmSync(join(site, 'core'), { recursive: true, force: true });
  rmSync(join(site, 'plugins'), { recursive: true, force: true });
  cpSync(join(releases, String(release)), site, { recursive: true });
}

function run(args: string[], explain: string): number {
  console.log(bold(`\n$ outageless ${args.join(' ')}`));
  console.log(`# ${explain}`);
  const result = spawnSync(process.execPath, [bin, ...args, '--root', site], { encoding: 'utf8' });
  process.stdout.write(result.stdout);
  process.stdout.write(result.stderr);
  console.log(bold(`→ exit code ${result.status}`));
  return result.status ?? -1;
}

rmSync(site, { recursive: true, force: true });
mkdirSync(site, { recursive: true });

deploy(1);
run(['upgrade', '--is-pending'], 'nothing is installed yet, so an install is pending (exit 2)');
run(['upgrade', '--non-interactive'], 'fresh install of release 1 into the embedded database (exit 0)');
run(['check-schema'], 'the live schema matches every db/schema.ts (exit 0)');

deploy(2);
run(['upgrade', '--is-pending'], 'release 2 is pending (exit 2)');
run(['upgrade', '--is-maintenance-required'], 'code-only bumps and steps declared outage none: no maintenance (exit 3)');
run(['upgrade', '--no-maintenance', '--set-ui-upgrade-lock', '--non-interactive'], 'upgrade while fronts keep serving; prints the cache purge to run after cutover (exit 0)');

deploy(3);
run(['upgrade', '--is-maintenance-required'], 'an undeclared step (mod_quiz) and an unvouched db/ change (local_reports) need maintenance (exit 2)');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'refused: this upgrade WILL result in maintenance mode; nothing is done (exit 2)');
run(['upgrade', '--non-interactive', '--unset-ui-upgrade-lock'], 'maintenance-mode upgrade: fronts answer 503 while it runs (exit 0)');
run(['check-schema'], 'install of 1 + upgrades to 2 and 3 gives exactly the declared schema (exit 0)');
run(['status'], 'installed versus code per component, and the site flags');

// Fronts: two web processes' worth of Fastify apps sharing the embedded database (an
// embedded site serves one process; a PostgreSQL site would run them as separate processes).
console.log(bold('\n=== Starting two fronts on the embedded site ==='));
const adminSecret = process.env.OUTAGELESS_ADMIN_SECRET ?? 'demo-secret';
const database = await openDatabase(resolveDatabaseUrl({ root: site }));
const fronts: { app: FastifyInstance; address: string }[] = [];
const basePort = Number(process.env.DEMO_PORT ?? 3000);
for (const port of [basePort, basePort + 1]) {
  const app = Fastify();
  await app.register(outageless, { root: site, database, adminSecret, pollIntervalMs: 200 });
  fronts.push({ app, address: await app.listen({ port, host: '127.0.0.1' }) });
}
const probe = async (label: string) => {
  for (const { address } of fronts) {
    const response = await fetch(`${address}/mod_assign/`, { headers: { accept: 'application/json' } });
    console.log(`  ${label.padEnd(34)} GET ${address}/mod_assign/ -> ${response.status}${response.headers.get('retry-after') ? ` (Retry-After: ${response.headers.get('retry-after')})` : ''} ${await response.text()}`);
  }
};
await probe('serving normally:');
run(['status'], 'a second process cannot open an embedded site the fronts hold (exit 5); PostgreSQL sites have no such limit');
// In this process, the operator API does what `outageless maintenance enable` does on PostgreSQL.
await setSiteMaintenance(database.db, true, 'Back soon');
await new Promise((resolve) => setTimeout(resolve, 50)); // the fronts hear the NOTIFY
await probe('during whole-site maintenance:');
await setSiteMaintenance(database.db, false);
await new Promise((resolve) => setTimeout(resolve, 50));
await probe('after maintenance:');

const stop = async () => {
  for (const { app } of fronts) await app.close();
  await database.close();
};
console.log(`\nThe demo site is in ${site} (embedded database in .outageless/db).`);
if (process.stdout.isTTY && !process.env.CI) {
  console.log(bold(`\nBrowse ${fronts.map((f) => f.address).join(' and ')}; the admin area is ${fronts[0]!.address}/admin (secret: ${adminSecret}). Ctrl-C stops.`));
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
} else {
  await stop();
  console.log('Fronts stopped (not a terminal). Run `npm run demo` in a terminal to keep them serving.');
}
