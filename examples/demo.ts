/**
 * `npm run demo`: walks a fresh embedded copy of the example site from release 1 to 8,
 * deploying each release's code over the last as an operator would, and printing every
 * command, its plan (classes and reasons) and its exit code. Releases 5 and 6 are an
 * expand → backfill → contract change: a pre step, a background migration with its progress
 * and "still being upgraded" answers, then a post step gated on the migration. Releases 7
 * and 8 are a data format's two phases: write raised, coverage rising with `data backfill`,
 * the read raise refused and then accepted.
 */
import { spawn, spawnSync } from 'node:child_process';
import { sql } from 'kysely';
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

function run(args: string[], explain: string, options: { quiet?: boolean } = {}): { code: number; stdout: string } {
  if (!options.quiet) {
    console.log(bold(`\n$ outageless ${args.join(' ')}`));
    console.log(`# ${explain}`);
  }
  const result = spawnSync(process.execPath, [bin, ...args, '--root', site], { encoding: 'utf8' });
  if (!options.quiet) {
    process.stdout.write(result.stdout);
    process.stdout.write(result.stderr);
    console.log(bold(`→ exit code ${result.status}`));
  }
  return { code: result.status ?? -1, stdout: result.stdout };
}

/** Runs `outageless worker` for about `ms` once it has started, then stops it with SIGTERM. */
async function workFor(ms: number, explain: string): Promise<void> {
  const args = ['worker', '--pause', '250'];
  console.log(bold(`\n$ outageless ${args.join(' ')}    # stopped with SIGTERM after ${ms / 1000} s`));
  console.log(`# ${explain}`);
  const child = spawn(process.execPath, [bin, ...args, '--root', site], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    process.stdout.write(chunk);
    if (chunk.includes('working background migrations')) setTimeout(() => child.kill('SIGTERM'), ms);
  });
  const code = await new Promise<number | null>((resolveExit) => child.on('close', resolveExit));
  console.log(bold(`→ exit code ${code}`));
}

/** The one background migration of releases 5 and 6, as `background status --json` reports it. */
function migration(): { state: string; percent: number; cursor: number | null; maxKey: number } {
  const { stdout } = run(['background', 'status', '--json'], '', { quiet: true });
  return JSON.parse(stdout).backgroundMigrations[0];
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
const database3 = await openDatabase(resolveDatabaseUrl({ root: site }));
const fronts: { app: FastifyInstance; address: string }[] = [];
const basePort = Number(process.env.DEMO_PORT ?? 3000);
for (const port of [basePort, basePort + 1]) {
  const app = Fastify();
  await app.register(outageless, { root: site, database: database3, adminSecret, pollIntervalMs: 200 });
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
await setSiteMaintenance(database3.db, true, 'Back soon');
await new Promise((resolve) => setTimeout(resolve, 50)); // the fronts hear the NOTIFY
await probe('during whole-site maintenance:');
await setSiteMaintenance(database3.db, false);
await new Promise((resolve) => setTimeout(resolve, 50));
await probe('after maintenance:');

for (const { app } of fronts) await app.close();
await database3.close();
console.log('Fronts stopped: the rest of the demo runs CLI commands, and an embedded site serves one process.');

deploy(4);
run(['upgrade', '--is-maintenance-required'], 'mod_assign declares a step with outage component: only mod_assign pauses (exit 3)');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'upgrade with only mod_assign paused; the rest of the site serves (exit 0)');

// Data for the backfill: a few thousand online-text submissions in the release-4 shape.
const ROWS = 4000;
{
  const seeding = await openDatabase(resolveDatabaseUrl({ root: site }));
  await sql`insert into "user" (username, email) select 'student' || g, 'student' || g || '@example.com' from generate_series(1, ${ROWS}) g`.execute(seeding.db);
  await sql`insert into assign (course, name) select id, 'Reflective essay' from course where shortname = 'site'`.execute(seeding.db);
  await sql`insert into assign_submission (assignment, userid) select (select max(id) from assign), id from "user" where username like 'student%'`.execute(seeding.db);
  await sql`insert into assignsubmission_onlinetext (submission, onlinetext, onlineformat) select id, '<p>Essay ' || id || '</p>', 1 + id % 2 from assign_submission`.execute(seeding.db);
  await seeding.close();
  console.log(bold(`\nSeeded ${ROWS} online-text submissions in the release-4 shape (onlinetext + onlineformat).`));
}

deploy(5);
run(['upgrade', '--is-maintenance-required'], 'expand: a pre step adds content (json); a background migration will fill it (exit 3)');
run(['upgrade', '--phase', 'pre', '--non-interactive'], 'runs only the pre step, while the old fronts still serve; new code may take traffic after it (exit 0)');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'the main upgrade: moves the version and queues the background migration (exit 0)');
run(['background', 'status'], 'queued, 0%: no front or worker has taken a batch yet');
await workFor(1000, 'a worker works the migration in short batches, one transaction each (fronts do the same by default)');
run(['background', 'status'], 'partly done: cursor, rows/s and ETA');

// A release-5 front reads the new shape and calls ensureDone for the row's key. Its own
// background worker is off (jobs: false), so the demo decides when batches run.
const front5 = async (label: string, keys: readonly number[]) => {
  const database5 = await openDatabase(resolveDatabaseUrl({ root: site }));
  const app = Fastify();
  await app.register(outageless, { root: site, database: database5, adminSecret, jobs: false });
  for (const key of keys) {
    const response = await app.inject({ method: 'GET', url: `/assignsubmission_onlinetext/text/${key}`, headers: { accept: 'application/json' } });
    const retryAfter = response.headers['retry-after'];
    console.log(`  ${label.padEnd(30)} GET /assignsubmission_onlinetext/text/${key} -> ${response.statusCode}${retryAfter ? ` (Retry-After: ${retryAfter})` : ''} ${response.body}`);
  }
  await app.close();
  await database5.close();
};
const first = migration();
const waiting = (first.cursor ?? 0) + 1;
console.log(bold(`\n=== A release-5 front (ensureDone) at ${first.percent}%, cursor ${first.cursor} ===`));
await front5('migrated / not yet:', [1, waiting]);
await workFor(1000, 'more batches');
const second = migration();
console.log(bold(`\n=== The same front at ${second.percent}%, cursor ${second.cursor} ===`));
await front5('now migrated / still not:', [waiting, second.maxKey]);

deploy(6);
run(['upgrade', '--is-maintenance-required'], 'contract: the post step drops the old columns, gated on the migration (the gate is listed)');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'refused before anything runs: OUTAGELESS_ERR_UNFINISHED_PREREQUISITE names the migration, its progress and the command (exit 1)');
run(['background', 'finish', 'assignsubmission_onlinetext/onlinetext_content'], 'runs the rest in the foreground, with progress (exit 0)');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'accepted: no live front runs release 5 any more, so the post step runs at its end (exit 0)');
run(['check-schema'], 'onlinetext and onlineformat are gone: exactly release 6\'s db/schema.ts (exit 0)');
run(['status'], 'every component up to date; the migration finished');

// Data formats (releases 7 and 8): block_news posts get a summary, in two phases. Release 7
// writes format 2 and still reads 1; release 8 reads 2 only, once the data allows it.
const POSTS = 5000;
{
  const seeding = await openDatabase(resolveDatabaseUrl({ root: site }));
  await sql`insert into block_news_post (course, subject, message) select (select id from course where shortname = 'site'), 'News ' || g, 'Item ' || g || E' of the\n  week' from generate_series(1, ${POSTS}) g`.execute(seeding.db);
  await seeding.close();
  console.log(bold(`\nSeeded ${POSTS} news posts in the release-6 shape (no format yet).`));
}
deploy(7);
run(['upgrade', '--is-maintenance-required'], 'phase 1: a new column with a default (format 1) and db/formats.ts writing 2, reading 1: no maintenance (exit 3)');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'upgrade; fronts of release 7 now stamp format 2 on the posts they write (exit 0)');
run(['data', 'coverage'], 'every old post is still format 1: 0% at or above the write version');
deploy(8);
run(['upgrade', '--no-maintenance', '--non-interactive'], 'phase 2 raises read to 2: refused before anything runs with OUTAGELESS_ERR_FORMAT_READ_GATE and the coverage (exit 1)');
run(['data', 'backfill', 'block_news/post'], 'queues the format\'s backfill function as a background migration (exit 0)');
await workFor(300, 'a worker re-writes old posts in batches');
run(['data', 'coverage'], 'coverage rising');
run(['background', 'finish', 'block_news/format:post:v2'], 'the rest in the foreground, with progress (exit 0)');
run(['data', 'coverage'], '100% at or above 2, and no live front writes 1');
run(['upgrade', '--no-maintenance', '--non-interactive'], 'phase 2 accepted now: read 2, class none (exit 0)');

console.log(bold('\n=== Two fronts on release 8 ==='));
const database = await openDatabase(resolveDatabaseUrl({ root: site }));
const fronts6: { app: FastifyInstance; address: string }[] = [];
for (const port of [basePort, basePort + 1]) {
  const app = Fastify();
  await app.register(outageless, { root: site, database, adminSecret, pollIntervalMs: 200 });
  fronts6.push({ app, address: await app.listen({ port, host: '127.0.0.1' }) });
}
for (const { address } of fronts6) {
  const response = await fetch(`${address}/assignsubmission_onlinetext/text/${second.maxKey}`, { headers: { accept: 'application/json' } });
  console.log(`  GET ${address}/assignsubmission_onlinetext/text/${second.maxKey} -> ${response.status} ${await response.text()}`);
}

const stop = async () => {
  for (const { app } of fronts6) await app.close();
  await database.close();
};
console.log(`\nThe demo site is in ${site} (embedded database in .outageless/db).`);
if (process.stdout.isTTY && !process.env.CI) {
  console.log(bold(`\nBrowse ${fronts6.map((f) => f.address).join(' and ')}; the admin area is ${fronts6[0]!.address}/admin (secret: ${adminSecret}). Ctrl-C stops.`));
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
} else {
  await stop();
  console.log('Fronts stopped (not a terminal). Run `npm run demo` in a terminal to keep them serving.');
}
