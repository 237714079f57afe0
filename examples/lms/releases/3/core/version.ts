import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'core',
  version: 2026030100,
  release: '1.2',
  maturity: 'stable',
  pluginTypes: ['theme', 'auth', 'format', 'block', 'mod', 'local'],
});
