// Bad input gets a clear error and breaks nothing: after each failure the
// manager has no leftover process and still spawns a good worker.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ISOLATIONS, fixture, source, withManager } = require('./helpers');
const { MethodNotFoundError, RemoteError, SpawnError, TitanError } = require('titan-pm');

/** The SpawnError of spawning `target`; its message and stderr tail together. */
async function spawnError(pm, target, options) {
  const err = await pm.spawn(target, options).then(() => null, (e) => e);
  assert.ok(err instanceof SpawnError && err instanceof TitanError, `expected a SpawnError, got ${err}`);
  assert.deepEqual(await pm.listProcesses(), [], 'a failed spawn leaves no process behind');
  return `${err.message}\n${err.stderrTail}`;
}

for (const isolation of ISOLATIONS) {
  const cases = [
    ['a missing file', '/nonexistent/calculator.js', /cannot read \/nonexistent\/calculator\.js/],
    ['no default export', fixture('no-default.js'), /no-default\.js has no default export/],
    ['no @Process class', fixture('no-process.js'), /default export of no-process\.js is not a @Process class \(found: class Plain\)/],
    ['init throwing', fixture('init-throws.js'), /init raised Error: init failed on purpose/],
    ['a syntax error', source('syntax-error.js'), /cannot load syntax-error\.js: SyntaxError/],
    ['a TypeScript file', source('calculator.ts'), /compile it and spawn .*calculator\.js/],
  ];
  for (const [what, target, expected] of cases) {
    test(`${what} is a SpawnError (${isolation})`, { timeout: 30000 }, () =>
      withManager({ isolation }, async (pm) => {
        assert.match(await spawnError(pm, target), expected);
        const calc = await pm.spawn(fixture('calculator.js'));
        assert.equal(await calc.add(1, 1), 2);
      }),
    );
  }

  test(`an unknown method is a MethodNotFoundError naming the public ones (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      for (const name of ['nope', 'notPublic', 'init', 'cleanup']) {
        const err = await calc[name]().then(() => null, (e) => e);
        assert.ok(err instanceof MethodNotFoundError, String(err));
        assert.equal(err.method, name);
        assert.ok(err.available.includes('add') && !err.available.includes('notPublic'), err.available.join());
      }
      assert.equal(await calc.add(1, 1), 2);
    }),
  );

  test(`a method that throws is a RemoteError with the remote type and stack (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const err = await calc.fail('out of range').then(() => null, (e) => e);
      assert.ok(err instanceof RemoteError && err instanceof TitanError && err instanceof Error, String(err));
      assert.equal(err.remoteType, 'RangeError');
      assert.equal(err.message, 'RangeError: out of range');
      assert.match(err.remoteStack, /calculator\.js/);
      assert.match(err.stack, /--- remote stack ---/);
      assert.equal(await calc.add(1, 1), 2);
    }),
  );
}

test('a Python file in a worker thread says to use child', { timeout: 30000 }, () =>
  withManager({}, async (pm) => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'titan-')), 'calc.py');
    fs.writeFileSync(file, 'x = 1\n');
    assert.match(await spawnError(pm, file, { isolation: 'worker' }), /use isolation 'child'/);
  }),
);

test('a bad option is a ConfigError', { timeout: 30000 }, () =>
  withManager({}, async (pm) => {
    const { ConfigError } = require('titan-pm');
    const err = await pm.spawn(fixture('calculator.js'), { transport: 'pigeon' }).then(() => null, (e) => e);
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, /unknown transport "pigeon"/);
  }),
);
