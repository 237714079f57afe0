import { randomBytes } from 'node:crypto';

/**
 * Event job ids that sort in emission order (UUIDv7 layout with a monotonic counter).
 *
 * pg-boss hands out a component's events by `created_on`, then by id. `created_on` is the
 * emitting transaction's start time, which ties for two emits in one transaction, and on
 * PGlite (millisecond clock) for emits in the same millisecond; a random v4 id would then
 * order them by chance. These ids break the tie in emission order within a process.
 */
let lastMs = 0;
let counter = 0;

export function monotonicUuid(): string {
  let ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    counter = 0;
  } else {
    // Same millisecond, or the clock went back: stay on the last one and count up.
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      ms = ++lastMs;
      counter = 0;
    }
  }
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
