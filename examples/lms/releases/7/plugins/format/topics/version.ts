import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'format_topics',
  version: 2026020100,
  release: '1.1',
  codeIncrement: '1.1.0001',
  requires: 2026010100,
  maturity: 'stable',
});
