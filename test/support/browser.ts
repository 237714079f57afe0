/**
 * A real Chromium for browser tests, driven by playwright-core. It uses the system's Debian
 * package (`apt-get install chromium`, /usr/bin/chromium), never a downloaded browser.
 * Without it the browser tests skip, and say so.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { REPO } from './sites.ts';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** True when the Chromium binary exists (checked once per file). */
export const chromiumAvailable: boolean = existsSync(CHROMIUM_PATH);
if (!chromiumAvailable) {
  console.warn(`[outageless tests] Chromium not found at ${CHROMIUM_PATH} (apt-get install -y chromium): browser tests are SKIPPED.`);
}

/** Launches headless Chromium with everything that would talk to the network turned off. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** `test-artifacts/<name>/` at the repo root (git-ignored), created on demand. */
export async function artifactsDir(name: string): Promise<string> {
  const dir = join(REPO, 'test-artifacts', name);
  await mkdir(dir, { recursive: true });
  return dir;
}
