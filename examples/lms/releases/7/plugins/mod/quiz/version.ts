import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'mod_quiz',
  version: 2026030100,
  release: '1.2',
  requires: 2026010100,
  maturity: 'stable',
});
