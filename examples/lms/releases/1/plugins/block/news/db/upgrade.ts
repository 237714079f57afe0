import { defineUpgrade } from 'outageless';

/** block_news upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
