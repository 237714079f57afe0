import { createInterface } from 'node:readline/promises';

/**
 * Asks the operator to confirm. On a terminal it uses @clack/prompts; on a pipe (a runbook
 * script answering "y") it reads one line, so automation can accept without a TTY.
 * Anything but an explicit yes cancels: an upgrade must never start by accident.
 */
export async function confirm(question: string): Promise<boolean> {
  if (process.stdin.isTTY) {
    // Loaded lazily: --is-pending and friends never pay for the prompt library.
    const prompts = await import('@clack/prompts');
    const answer = await prompts.confirm({ message: question, initialValue: false });
    return answer === true;
  }
  process.stdout.write(`${question} [y/N] `);
  const reader = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of reader) {
      process.stdout.write('\n'); // the answer came from a pipe, so nothing echoed a newline
      return /^\s*y(es)?\s*$/i.test(line);
    }
    process.stdout.write('\n');
    return false;
  } finally {
    reader.close();
  }
}
