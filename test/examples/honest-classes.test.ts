/**
 * The example site stays honest (issue 7): for every release, each step's declared class is
 * what the plan verifies from its source and what a rehearsal on a scratch copy observes, and
 * the steps produce exactly the release's db/schema.ts. Pre, background and post steps
 * (releases 5 and 6) are held to the same rule; a post step's breaking findings are not raised
 * by design (it runs once no old front is left).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { cli, createSiteDir, type SiteDir } from '../support/sites.ts';

describe.skipIf(!postgresAvailable)('the example site declares the classes its steps really need (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let site: SiteDir;
  const run = (args: string[]) => cli([...args, '--root', site.root, '--database', scratch.url], { timeoutMs: 90_000 });

  beforeAll(async () => {
    scratch = await createScratchDatabase('honest_classes');
    site = await createSiteDir(1);
    const install = await run(['upgrade', '--non-interactive']);
    expect(install.code, install.stderr).toBe(0);
  });
  afterAll(async () => {
    await site?.cleanup();
    await scratch?.drop();
  });

  // In order: each release is rehearsed against the one before it, then really upgraded to.
  it.each([2, 3, 4, 5, 6])('release %i: nothing raised by the plan, rehearsal agrees, result equals db/schema.ts', async (release) => {
    await site.deploy(release);
    // Release 6 is gated on release 5's background migration (its post step's `after:`).
    if (release === 6) {
      const finished = await run(['background', 'finish', 'assignsubmission_onlinetext/onlinetext_content']);
      expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    }
    const planned = await run(['upgrade', '--is-maintenance-required', '--json']);
    const plan = JSON.parse(planned.stdout);
    const steps = plan.components.flatMap((item: any) => item.steps.map((step: any) => ({ component: item.component, ...step })));
    expect(steps.length).toBeGreaterThan(0);
    for (const step of steps) {
      expect(step.findings, `${step.component}/${step.id}`).toEqual([]);
      expect(step.outage, `${step.component}/${step.id}`).toBe(step.declaredOutage);
    }

    // Release 6 holds a post step (a drop): rehearse judges it as the runner does, with the old
    // code gone, so the drop is no breaking change there.
    const rehearsal = await run(['rehearse', '--json', '--rows', '200']);
    expect(rehearsal.code, rehearsal.stdout + rehearsal.stderr).toBe(0);

    const upgraded = await run(['upgrade', '--non-interactive']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const checked = await run(['check-schema']);
    expect(checked.code, checked.stdout).toBe(0);
  }, 120_000);
});
