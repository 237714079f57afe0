#!/usr/bin/env node
// The published CLI runs the compiled JavaScript: Node does not strip types inside node_modules.
import module from 'node:module';

// Startup time is part of the product (deploy pipelines call --is-pending on every deploy):
// the compile cache spares recompiling the CLI and every component file on each run.
module.enableCompileCache?.();
// `outageless status | head` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

// Before the CLI loads: on an older Node the first sign would be "Unknown file extension .ts"
// from the site's first component file, which says nothing about the Node version.
const { checkNodeVersion } = await import('../dist/cli/node-version.js');
const tooOld = checkNodeVersion(process.versions.node);
if (tooOld) {
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: tooOld.toJSON() }, null, 2)}\n`);
  process.stderr.write(`${tooOld.describe()}\n`);
  process.exitCode = tooOld.exitCode;
} else {
  const { main } = await import('../dist/cli/main.js');
  process.exitCode = await main(process.argv.slice(2));
}
