/**
 * The CLI loads only the module of the command it runs (src/cli/main.ts COMMANDS): every entry
 * names the command its module defines, and `upgrade --is-pending`, which deploy pipelines run
 * on every deploy, loads no web server, job queue, embedded database or rehearsal code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/main.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, REPO, writeBareCore, type SiteDir } from '../support/sites.ts';

describe('COMMANDS', () => {
  it('maps each name to a module that defines the command of that name, once', async () => {
    const names = COMMANDS.map(([name]) => name);
    expect(new Set(names).size).toBe(names.length);
    for (const [name, load] of COMMANDS) {
      const factory = await load();
      expect(factory(() => undefined).name()).toBe(name);
    }
  });
});

describe.skipIf(!postgresAvailable)('upgrade --is-pending', () => {
  let site: SiteDir;
  let database: ScratchDatabase;
  beforeAll(async () => {
    site = await createSiteDir();
    await writeBareCore(site, 2026010100);
    database = await createScratchDatabase('lazy_commands');
  });
  afterAll(async () => {
    await database?.drop();
    await site?.cleanup();
  });

  it('loads no fastify, pg-boss, PGlite or rehearsal module', async () => {
    // A module hook in the CLI process writes down every module it loads.
    const hook = join(site.root, 'trace-hook.mjs');
    const loaded = join(site.root, 'loaded.txt');
    await writeFile(hook, `import module from 'node:module';
import { writeFileSync } from 'node:fs';
const urls = [];
module.registerHooks({ load(url, context, next) { urls.push(url); return next(url, context); } });
process.on('exit', () => writeFileSync(${JSON.stringify(loaded)}, urls.join('\\n')));
`);
    const result = await cli(['upgrade', '--is-pending', '--root', site.root, '--database', database.url], { env: { NODE_OPTIONS: `--import=${hook}` } });
    // Not installed yet: the fresh install is pending.
    expect(result.code).toBe(2);
    const urls = (await readFile(loaded, 'utf8')).split('\n');
    expect(urls.some((url) => url.includes('/dist/cli/upgrade-command.js'))).toBe(true);
    const unwanted = urls.filter((url) => /node_modules\/(fastify|@fastify|pg-boss|@electric-sql|@clack)\/|\/dist\/(rehearse|fastify|upgrade\/run\.js|cli\/(front|rehearse|worker|lint)-command)/.test(url));
    expect(unwanted.map((url) => url.replace(`file://${REPO}/`, ''))).toEqual([]);
  });
});
