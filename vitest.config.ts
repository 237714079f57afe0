import { defineConfig } from 'vitest/config';

// PostgreSQL tests use TEST_DATABASE_URL; on a machine without a server they skip and say so.
process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Tests that assert how long things take (the longest request behind a lock; the worker's
 * pauses and pressure detection) run after the rest, each alone: on 2 cores a neighbouring
 * test file would measure itself, not the product.
 */
const TIMING = ['test/upgrade/lock-queue.test.ts', 'test/migrations/engine.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: TIMING, sequence: { groupOrder: 0 } } },
      // One group per file, so each runs with nothing beside it.
      ...TIMING.map((file, index) => ({ extends: true, test: { name: `timing ${index + 1}`, include: [file], sequence: { groupOrder: index + 1 } } })),
    ],
  },
});
