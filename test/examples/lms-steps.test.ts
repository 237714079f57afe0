/**
 * The example site's upgrade steps under the step harness (`outageless/testing`): for each
 * release pair N-1 → N, every component with pending steps has each step run twice (the
 * second run must change nothing) and its tables compared with its db/schema.ts; then the
 * rest of the site (new components) is brought to N and the whole schema compared. Two
 * data steps are checked on seeded rows. On PGlite, and on PostgreSQL when it is available.
 *
 * The release dirs are used in place: their `import … from 'outageless'` resolves to the
 * repository's own package (dist/, so `npm run build` first).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStepHarness, type StepHarness } from '../../src/testing/index.ts';
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from '../support/databases.ts';
import { RELEASES } from '../support/sites.ts';

interface Pair {
  readonly from: number;
  readonly to: number;
  /** The components with steps to run, in upgrade order: the test fails if the example drifts. */
  readonly components: readonly string[];
  readonly installs: readonly string[];
  /** Rows seeded on release N-1 before any step runs, and what they must look like at N. */
  readonly seed?: (harness: StepHarness) => Promise<void>;
  readonly check?: (harness: StepHarness) => Promise<void>;
  /** Release 1 → 3 is the two pairs before it in one go: PostgreSQL only, as a PGlite boot costs seconds. */
  readonly postgresOnly?: boolean;
}

const siteCourse = async (harness: StepHarness) =>
  (await harness.db.selectFrom('course').select('id').where('shortname', '=', 'site').executeTakeFirstOrThrow()).id as number;

const CREATED = new Date('2026-01-15T10:00:00.000Z');

const PAIRS: readonly Pair[] = [
  { from: 1, to: 2, components: ['auth_manual', 'block_news', 'mod_assign'], installs: [] },
  {
    from: 2,
    to: 3,
    components: ['mod_assign', 'assignsubmission_file', 'mod_quiz'],
    installs: ['block_calendar'],
    async seed(harness) {
      const course = await siteCourse(harness);
      await harness.seed('quiz', [{ course, name: 'Ungraded', grade: null }, { course, name: 'Graded', grade: 7 }]);
    },
    async check(harness) {
      // The guarded backfill gives the ungraded quiz 0 and leaves the graded one alone.
      await harness.assertRows('quiz', [{ name: 'Ungraded', grade: 0 }, { name: 'Graded', grade: 7 }]);
      expect(harness.logs.filter((entry) => entry.step === 'quiz_grade_not_null').map((entry) => entry.message)).toEqual([
        'quiz: set grade 0 on 1 quizzes without a grade',
        'quiz: set grade 0 on 0 quizzes without a grade',
      ]);
    },
  },
  {
    from: 3,
    to: 4,
    components: ['block_news', 'mod_assign'],
    installs: [],
    async seed(harness) {
      const course = await siteCourse(harness);
      const [user] = await harness.seed('user', [{ username: 'student', email: 'student@example.com' }]);
      const [assign] = await harness.seed('assign', [{ course, name: 'Essay' }]);
      await harness.seed('assign_submission', [{ assignment: assign!.id, userid: user!.id, created: CREATED }]);
      await harness.seed('block_news_post', [{ course, subject: 'Hello', message: 'First post' }]);
    },
    async check(harness) {
      await harness.assertRows('assign_submission', [{ status: 'new', created: CREATED, timemodified: CREATED }]);
      // Release 1's welcome post (db/install.ts) and the seeded one: neither is pinned.
      await harness.assertRows('block_news_post', [{ pinned: false }, { subject: 'Hello', pinned: false }]);
    },
  },
  {
    // Expand and backfill: the pre step adds content, the background migration fills it.
    from: 4,
    to: 5,
    components: ['assignsubmission_onlinetext'],
    installs: [],
    async seed(harness) {
      const course = await siteCourse(harness);
      const users = await harness.seed('user', [1, 2, 3].map((n) => ({ username: `student${n}`, email: `student${n}@example.com` })));
      const [assign] = await harness.seed('assign', [{ course, name: 'Essay' }]);
      const submissions = await harness.seed('assign_submission', users.map((user) => ({ assignment: assign!.id, userid: user.id })));
      await harness.seed('assignsubmission_onlinetext', [
        { submission: submissions[0]!.id, onlinetext: '<p>Hello</p>', onlineformat: 1 },
        { submission: submissions[1]!.id, onlinetext: '*Hi*', onlineformat: 2 },
        { submission: submissions[2]!.id, onlinetext: null, onlineformat: 0 },
      ]);
    },
    async check(harness) {
      // Both shapes side by side: the old columns untouched, the format code now a name.
      await harness.assertRows('assignsubmission_onlinetext', [
        { onlinetext: '<p>Hello</p>', onlineformat: 1, content: { text: '<p>Hello</p>', format: 'html' } },
        { onlinetext: '*Hi*', onlineformat: 2, content: { text: '*Hi*', format: 'markdown' } },
        { onlinetext: null, onlineformat: 0, content: { text: '', format: 'plain' } },
      ]);
    },
  },
  {
    // Contract: the post step drops the old columns (the harness runs the gated step itself).
    from: 5,
    to: 6,
    components: ['assignsubmission_onlinetext'],
    installs: [],
    async seed(harness) {
      const course = await siteCourse(harness);
      const [user] = await harness.seed('user', [{ username: 'student', email: 'student@example.com' }]);
      const [assign] = await harness.seed('assign', [{ course, name: 'Essay' }]);
      const [submission] = await harness.seed('assign_submission', [{ assignment: assign!.id, userid: user!.id }]);
      await harness.seed('assignsubmission_onlinetext', [{ submission: submission!.id, onlinetext: 'Done', onlineformat: 2, content: { text: 'Done', format: 'markdown' } }]);
    },
    async check(harness) {
      await harness.assertRows('assignsubmission_onlinetext', [{ content: { text: 'Done', format: 'markdown' } }]);
    },
  },
  {
    from: 1,
    to: 3,
    components: ['auth_manual', 'block_news', 'mod_assign', 'assignsubmission_file', 'mod_quiz'],
    installs: ['block_calendar'],
    postgresOnly: true,
  },
];

function suite(kind: 'pglite' | 'postgres'): void {
  let scratch: ScratchDatabase | undefined;
  beforeAll(async () => {
    if (kind === 'postgres') scratch = await createScratchDatabase('lms_steps');
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  it.each(PAIRS.filter((pair) => kind === 'postgres' || !pair.postgresOnly))('release $from → $to: every step twice, then schema equal to db/schema.ts', async (pair) => {
    const harness = await createStepHarness({
      from: join(RELEASES, String(pair.from)),
      to: join(RELEASES, String(pair.to)),
      ...(scratch ? { database: scratch.url } : {}),
    });
    try {
      await pair.seed?.(harness);
      const withSteps = [...new Set(harness.pending().filter((step) => step.status === 'pending').map((step) => step.component))];
      expect(withSteps).toEqual(pair.components);
      for (const component of withSteps) {
        const runs = await harness.runPending(component);
        expect(runs.length).toBeGreaterThan(0);
        await harness.assertSchemaMatches(component);
      }
      // The rest of release N: new components install from their db/schema.ts.
      const rest = await harness.runPending();
      expect(rest).toEqual(pair.installs.map((component) => expect.objectContaining({ kind: 'install', component })));
      await harness.assertSchemaMatches();
      expect(harness.pending().filter((step) => step.status === 'pending')).toEqual([]);
      await pair.check?.(harness);
    } finally {
      await harness.close();
    }
  });
}

describe('example site steps on PGlite', () => suite('pglite'));
describe.skipIf(!postgresAvailable)('example site steps on PostgreSQL', () => suite('postgres'));
