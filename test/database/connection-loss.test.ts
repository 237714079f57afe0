/**
 * A connection that dies under a command is reported as OUTAGELESS_ERR_CONNECTION_LOST with the
 * way to resume, never as "Unexpected error … please report it" (issue 11, item 2, outside steps).
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isConnectionLoss } from '../../src/database/connection-loss.ts';
import { errors } from '../../src/errors.ts';
import { postgresAvailable, TEST_DATABASE_URL } from '../support/databases.ts';

describe.skipIf(!postgresAvailable)('a lost database connection (PostgreSQL)', () => {
  it('is recognised from what pg really throws, whether the session was ended or its socket dropped', async () => {
    const victim = new pg.Client({ connectionString: TEST_DATABASE_URL, application_name: 'outageless-connection-loss-test' });
    victim.on('error', () => {});
    await victim.connect();
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid');
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const running = victim.query('select pg_sleep(5)').then(() => undefined, (error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      const terminated = await running;
      expect(terminated).toBeInstanceOf(Error);
      expect(isConnectionLoss(terminated)).toBe(true);
      // The next query on the dead client fails too, differently, and is recognised as well.
      const after = await victim.query('select 1').then(() => undefined, (error: unknown) => error);
      expect(isConnectionLoss(after)).toBe(true);
      const coded = errors.connectionLost(terminated);
      expect(coded.code).toBe('OUTAGELESS_ERR_CONNECTION_LOST');
      expect(coded.exitCode).toBe(1);
      expect(coded.describe()).toMatch(/rerun the command: an upgrade resumes at the step it was on/);
    } finally {
      await admin.end();
      await victim.end().catch(() => {});
    }
  });

  it('is not claimed for ordinary SQL errors, which stay what they are', async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const error = await client.query('select * from no_such_table_here').then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(isConnectionLoss(error)).toBe(false);
      expect(isConnectionLoss(new Error('step failed'))).toBe(false);
    } finally {
      await client.end();
    }
  });
});
