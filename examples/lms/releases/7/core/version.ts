import { defineVersion } from 'outageless';

export default defineVersion({
  component: 'core',
  version: 2026040100,
  release: '1.3',
  maturity: 'stable',
  pluginTypes: ['theme', 'auth', 'format', 'block', 'mod', 'local'],
});
