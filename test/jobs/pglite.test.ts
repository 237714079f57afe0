/**
 * Tasks and events with per-component maintenance on the embedded database (PGlite): pg-boss
 * runs on the shared in-process instance through the site's Kysely; two fronts share it.
 */
import { describe } from 'vitest';
import { jobsScenarios } from './scenarios.ts';
import { memoryUrl } from './site.ts';

describe('jobs on PGlite', () => {
  jobsScenarios({ open: async () => ({ url: memoryUrl('pglite'), cleanup: async () => {} }) });
});
