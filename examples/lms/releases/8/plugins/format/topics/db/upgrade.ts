import { defineUpgrade } from 'outageless';

/** format_topics upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
