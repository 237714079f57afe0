/**
 * Ordering and classification in-process (no database): the order of DESIGN §4.1 and the
 * verdicts for each kind of change, read from the example site's releases.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { discoverSite } from '../../src/component/discover.ts';
import { buildPlan } from '../../src/plan/plan.ts';
import { upgradeOrder } from '../../src/plan/order.ts';
import type { InstalledComponent } from '../../src/state/installed.ts';
import { RELEASES } from '../support/sites.ts';

/** Installed state as if `release` had been installed: every component at its code version. */
async function installedAs(release: number): Promise<Map<string, InstalledComponent>> {
  const code = await discoverSite(join(RELEASES, String(release)));
  return new Map([...code.components.values()].map((c) => [c.name, {
    component: c.name, version: c.manifest.version, release: c.manifest.release ?? null, codeIncrement: c.manifest.codeIncrement ?? null,
    definitionsHash: c.definitions.hash, definitions: c.definitions.files, updatedAt: new Date(),
  }]));
}

describe('upgrade order', () => {
  it('puts core first, types in the configured order, subplugins after their parent, local last', async () => {
    const code = await discoverSite(join(RELEASES, '3'));
    expect(upgradeOrder(code).map((c) => c.name)).toEqual([
      'core', 'theme_clean', 'auth_manual', 'format_topics', 'block_calendar', 'block_news',
      'mod_assign', 'assignsubmission_file', 'assignsubmission_onlinetext', 'mod_quiz', 'local_reports',
    ]);
  });
});

describe('classification', () => {
  it('release 1 → 2 needs no maintenance, with a reason per component', async () => {
    const code = await discoverSite(join(RELEASES, '2'));
    const plan = await buildPlan({ code, installed: await installedAs(1), appliedSteps: new Map() });
    expect(plan.maintenanceRequired).toBe(false);
    expect(plan.outage).toBe('none');
    const byName = new Map(plan.items.map((item) => [item.component, item]));
    expect(byName.get('core')?.reasons).toEqual(['code-only change: db/ unchanged since 2026010100']);
    expect(byName.get('mod_assign')?.reasons).toEqual(['step assign_add_duedate (2026020100) declares outage none']);
    expect(byName.get('mod_quiz')?.action).toBe('unchanged');
  });

  it('release 2 → 3 needs site maintenance because of an undeclared step and an unvouched db/ change', async () => {
    const code = await discoverSite(join(RELEASES, '3'));
    const plan = await buildPlan({ code, installed: await installedAs(2), appliedSteps: new Map() });
    const byName = new Map(plan.items.map((item) => [item.component, item]));
    expect(plan.maintenanceRequired).toBe(true);
    expect(byName.get('mod_quiz')?.outage).toBe('site');
    expect(byName.get('mod_quiz')?.reasons.join()).toContain('declares no outage: assumed site');
    expect(byName.get('local_reports')?.outage).toBe('site');
    expect(byName.get('local_reports')?.reasons.join()).toContain('db/caches.ts changed');
    expect(byName.get('block_calendar')).toMatchObject({ action: 'install', outage: 'none' });
    expect(byName.get('mod_assign')).toMatchObject({ outage: 'none', purgeCaches: 'own' });
    expect(plan.maintenanceReasons).toHaveLength(2);
  });

  it('reports components installed but missing from disk without dropping them', async () => {
    const code = await discoverSite(join(RELEASES, '2'));
    // Release 3 added block_calendar; its code is gone again in release 2.
    const installed = new Map([...(await installedAs(2)), ['block_calendar', (await installedAs(3)).get('block_calendar')!]]);
    const plan = await buildPlan({ code, installed, appliedSteps: new Map() });
    const missing = plan.items.find((item) => item.component === 'block_calendar');
    expect(missing).toMatchObject({ action: 'missing-from-disk' });
    expect(plan.pending).toHaveLength(0);
  });

  it('refuses a downgrade with OUTAGELESS_ERR_DOWNGRADE', async () => {
    const code = await discoverSite(join(RELEASES, '1'));
    await expect(buildPlan({ code, installed: await installedAs(2), appliedSteps: new Map() })).rejects.toMatchObject({ code: 'OUTAGELESS_ERR_DOWNGRADE', location: { component: 'core' } });
  });
});
