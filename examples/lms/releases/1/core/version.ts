import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'core',
  version: 2026010100,
  release: '1.0',
  maturity: 'stable',
  pluginTypes: ['theme', 'auth', 'format', 'block', 'mod', 'local'],
});
