import { defineUpgrade } from 'outageless';

/** block_calendar upgrade steps. None yet: release 3 is its first install. */
export default defineUpgrade({
  steps: [],
});
