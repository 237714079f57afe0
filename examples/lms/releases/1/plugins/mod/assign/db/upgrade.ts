import { defineUpgrade } from 'outageless';

/** mod_assign upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
