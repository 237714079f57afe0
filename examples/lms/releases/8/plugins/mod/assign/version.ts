import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'mod_assign',
  version: 2026040100,
  release: '1.3',
  requires: 2026010100,
  maturity: 'stable',
  subplugins: { assignsubmission: 'submission' },
  // May pause on its own (`outageless maintenance enable --component mod_assign`), and a
  // step with outage 'component' pauses only mod_assign while the rest of the site serves.
  maintenance: { disableable: true },
});
