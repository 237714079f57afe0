import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'block_calendar',
  version: 2026030100,
  release: '1.2',
  requires: 2026030100,
  maturity: 'stable',
});
