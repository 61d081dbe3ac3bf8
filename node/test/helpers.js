// Shared by the tests: fixture paths (compiled under each decorator mode),
// a manager that always shuts down, and a bounded wait.
'use strict';
const path = require('node:path');
const { ProcessManager } = require('titan-pm');

const MODES = ['standard', 'experimental'];
const ISOLATIONS = ['worker', 'child'];

/** A compiled fixture: `fixture('calculator.js', 'standard')`. */
function fixture(file, mode = 'standard') {
  return path.join(__dirname, 'build', mode, file);
}

/** A hand-written fixture (not compiled). */
function source(file) {
  return path.join(__dirname, 'fixtures', file);
}

/** Runs `fn(pm)` with a manager that is shut down afterwards, whatever happens. */
async function withManager(config, fn) {
  const pm = new ProcessManager({ output: 'ignore', ...config });
  try {
    return await fn(pm);
  } finally {
    await pm.shutdown();
  }
}

/** Polls `check` until it returns true or `ms` pass; returns whether it did. */
async function eventually(check, ms = 5000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

module.exports = { MODES, ISOLATIONS, fixture, source, withManager, eventually };
