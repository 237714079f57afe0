import { defineUpgrade } from 'outageless';

/** local_reports upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
