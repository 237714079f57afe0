import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'auth_manual',
  version: 2026020100,
  release: '1.1',
  requires: 2026010100,
  maturity: 'stable',
});
