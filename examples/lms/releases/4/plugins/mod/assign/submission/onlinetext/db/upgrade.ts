import { defineUpgrade } from 'outageless';

/** assignsubmission_onlinetext upgrade steps. None yet: release 1 is the first install. */
export default defineUpgrade({
  steps: [],
});
