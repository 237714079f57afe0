import { defineUpgrade } from 'outageless';

/** auth_manual upgrade steps. */
export default defineUpgrade({
  steps: [
    {
      version: 2026020100,
      id: 'auth_manual_add_resettoken',
      description: 'Add a nullable password reset token to credentials',
      // Additive and nullable: old code keeps inserting credentials without it.
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('auth_manual_credential', 'resettoken', { type: 'varchar(64)', nullable: true });
      },
    },
  ],
});
