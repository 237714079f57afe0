import { defineUpgrade } from 'outageless';

/** assignsubmission_file upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
