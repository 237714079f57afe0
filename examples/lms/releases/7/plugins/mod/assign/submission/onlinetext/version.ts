import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'assignsubmission_onlinetext',
  version: 2026060100,
  release: '1.5',
  requires: 2026010100,
  maturity: 'stable',
});
