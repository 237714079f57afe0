import { defineUpgrade } from 'outageless';

/** mod_quiz upgrade steps. */
export default defineUpgrade({
  steps: [
    {
      version: 2026030100,
      id: 'quiz_grade_not_null',
      description: 'Give every quiz a grade (0 when unset) and make quiz.grade NOT NULL with default 0',
      // No `outage` on purpose: it defaults to 'site'. Old code may still write a NULL grade,
      // which the new constraint rejects, and new code relies on every quiz having a grade,
      // so old and new code cannot serve side by side.
      async run({ schema, log }) {
        // Batched and guarded: each batch of ids is its own short statement, and a rerun
        // finds no NULL grade left and updates nothing.
        const updated = await schema.backfill('quiz', { set: { grade: 0 }, where: { sql: 'grade is null' } });
        log(`quiz: set grade 0 on ${updated} quizzes without a grade`);
        await schema.changeColumn('quiz', 'grade', { type: 'numeric(10,5)', default: 0 });
      },
    },
  ],
});
