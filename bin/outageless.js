#!/usr/bin/env node
// The published CLI runs the compiled JavaScript: Node does not strip types inside node_modules.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
