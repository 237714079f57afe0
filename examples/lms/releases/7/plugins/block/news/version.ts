import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'block_news',
  version: 2026070100,
  release: '1.6',
  requires: 2026010100,
  maturity: 'stable',
});
