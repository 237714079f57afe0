/**
 * Issue 4 acceptance: a staged (`--no-maintenance`) upgrade of the example site from release
 * 3 to 4 under autocannon load on two fronts. Components not being upgraded answer no
 * non-2xx at all; the paused component answers 503 only inside its pause window. And a
 * component without `maintenance: { disableable: true }` can neither be paused nor staged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import autocannon from 'autocannon';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { startFront, type FrontProcess } from '../support/fronts.ts';

const OTHER_ROUTES = ['/', '/mod_quiz/', '/block_news/', '/local_reports/', '/auth_manual/', '/theme_clean/'];
const PAUSED_ROUTE = '/mod_assign/';

describe.skipIf(!postgresAvailable)('staged upgrade under load (PostgreSQL)', () => {
  let site: SiteDir;
  let scratch: ScratchDatabase;
  const fronts: FrontProcess[] = [];
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url]);

  beforeAll(async () => {
    site = await createSiteDir(3);
    scratch = await createScratchDatabase('staged_load');
    expect((await run(['upgrade', '--non-interactive'])).code).toBe(0);
    await site.deploy(4);
  });
  afterAll(async () => {
    for (const front of fronts) await front.stop();
    await site?.cleanup();
    await scratch?.drop();
  });

  it('refuses to pause a component that is not disableable', async () => {
    const refused = await run(['maintenance', 'enable', '--component', 'mod_quiz']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('OUTAGELESS_ERR_NOT_DISABLEABLE');
    expect(refused.stderr).toContain('plugins/mod/quiz/version.ts');
    const status = JSON.parse((await run(['status', '--json'])).stdout);
    expect(status.componentStates).toEqual([]);
  });

  it('treats a component-class change of a non-disableable component as site maintenance, and says why', async () => {
    await site.edit('plugins/mod/assign/version.ts', (text) => text.replace(/\s*maintenance: \{ disableable: true \},?/, ''));
    const required = await run(['upgrade', '--is-maintenance-required']);
    expect(required.code).toBe(2);
    expect(required.stdout).toContain('mod_assign does not declare maintenance: { disableable: true }');
    expect((await run(['upgrade', '--no-maintenance', '--non-interactive'])).code).toBe(2);
    await site.deploy(4);
    const staged = await run(['upgrade', '--is-maintenance-required']);
    expect(staged.code).toBe(3);
    expect(staged.stdout).toContain('pauses these components one at a time while the rest of the site serves: mod_assign');
  });

  it('serves every other component without a single non-2xx while mod_assign pauses, and 503s mod_assign only during its pause', async () => {
    // A rolling deploy: new code on every front with the UI lock set, then the CLI upgrades.
    expect((await run(['upgrade', '--is-maintenance-required', '--set-ui-upgrade-lock'])).code).toBe(3);
    fronts.push(await startFront({ root: site.root, database: scratch.url }), await startFront({ root: site.root, database: scratch.url }));

    const loads = fronts.map((front) =>
      autocannon({ url: front.url, requests: OTHER_ROUTES.map((path) => ({ method: 'GET' as const, path })), connections: 4, duration: 30 }),
    );
    // The paused component is sampled with timestamps, to place every 503 in time.
    const samples: { at: number; status: number }[] = [];
    let sampling = true;
    const samplers = fronts.map(async (front) => {
      while (sampling) {
        const response = await fetch(`${front.url}${PAUSED_ROUTE}`);
        await response.arrayBuffer();
        samples.push({ at: performance.now(), status: response.status });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    });

    await new Promise((resolve) => setTimeout(resolve, 1000));
    const upgradeStarted = performance.now();
    const upgrade = await run(['upgrade', '--no-maintenance', '--non-interactive', '--json']);
    const upgradeEnded = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    sampling = false;
    await Promise.all(samplers);
    for (const load of loads) (load as unknown as { stop(): void }).stop();
    const results = await Promise.all(loads);

    expect(upgrade.code, upgrade.stderr).toBe(0);
    const report = JSON.parse(upgrade.stdout);
    const pause = report.pauses.find((p: { component: string }) => p.component === 'mod_assign');
    expect(pause).toMatchObject({ leftIn: 'normal' });

    for (const result of results) {
      expect(result.non2xx).toBe(0);
      expect(result.errors).toBe(0);
      expect(result['2xx']).toBeGreaterThan(100);
    }
    const unavailable = samples.filter((sample) => sample.status !== 200);
    expect(unavailable.every((sample) => sample.status === 503)).toBe(true);
    // Every 503 falls inside the upgrade run (plus the state's propagation to the fronts),
    // and the span of 503s is no longer than the recorded pause plus that propagation.
    const slackMs = 250;
    for (const sample of unavailable) {
      expect(sample.at).toBeGreaterThanOrEqual(upgradeStarted);
      expect(sample.at).toBeLessThanOrEqual(upgradeEnded + slackMs);
    }
    if (unavailable.length > 0) {
      const span = unavailable.at(-1)!.at - unavailable[0]!.at;
      expect(span).toBeLessThanOrEqual(pause.pausedMs + slackMs);
    }
    expect(samples.filter((sample) => sample.at > upgradeEnded + slackMs).every((sample) => sample.status === 200)).toBe(true);
  });
});
