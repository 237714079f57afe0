import { defineUpgrade } from 'outageless';

/** auth_manual upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
