/**
 * Tasks and events with per-component maintenance on PostgreSQL: two fronts, each with its
 * own pool, coordinate through the database alone (pg-boss queues, LISTEN/NOTIFY, row locks).
 */
import { describe } from 'vitest';
import { createScratchDatabase, postgresAvailable } from '../support/databases.ts';
import { jobsScenarios } from './scenarios.ts';

describe.skipIf(!postgresAvailable)('jobs on PostgreSQL', () => {
  jobsScenarios({
    open: async () => {
      const scratch = await createScratchDatabase('jobs');
      return { url: scratch.url, cleanup: () => scratch.drop() };
    },
  });
});
