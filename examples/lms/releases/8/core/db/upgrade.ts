import { defineUpgrade } from 'outageless';

/** Core upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
