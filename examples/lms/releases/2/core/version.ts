import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'core',
  version: 2026020100,
  release: '1.1',
  maturity: 'stable',
  pluginTypes: ['theme', 'auth', 'format', 'block', 'mod', 'local'],
});
