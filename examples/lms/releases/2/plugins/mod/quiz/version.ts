import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'mod_quiz',
  version: 2026010100,
  release: '1.0',
  codeIncrement: '1.0.0001',
  requires: 2026010100,
  maturity: 'stable',
});
