import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'assignsubmission_onlinetext',
  version: 2026050101,
  release: '1.4',
  requires: 2026010100,
  maturity: 'stable',
});
