import { defineConfig } from 'vitest/config';

// PostgreSQL tests use TEST_DATABASE_URL; on a machine without a server they skip and say so.
process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Tests that assert how long traffic waits (a 300 ms bound on the longest request) run after
 * the rest, alone: on 2 cores a neighbouring test file would measure itself, not the product.
 */
const TIMING = ['test/upgrade/lock-queue.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: TIMING, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'timing', include: TIMING, sequence: { groupOrder: 1 } } },
    ],
  },
});
