import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'block_news',
  version: 2026040100,
  release: '1.3',
  requires: 2026010100,
  maturity: 'stable',
});
