import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'block_news',
  version: 2026080100,
  release: '1.7',
  requires: 2026010100,
  maturity: 'stable',
});
