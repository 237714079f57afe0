import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'local_reports',
  version: 2026030100,
  release: '1.2',
  requires: 2026010100,
  maturity: 'stable',
  dependencies: { mod_assign: 2026010100, mod_quiz: 2026010100 },
});
