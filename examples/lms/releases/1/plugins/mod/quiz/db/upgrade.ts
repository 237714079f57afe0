import { defineUpgrade } from 'outageless';

/** mod_quiz upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
