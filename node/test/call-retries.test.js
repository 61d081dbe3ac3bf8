// withOptions({ retries }): a call whose worker crashes waits for the restart and
// is sent again (at most `retries` times, within its deadline); without it the
// crash fails the call; a worker's own error is never retried; a bad value is a
// ConfigError naming `retries`. The worker counts its calls in a file that
// outlives its crashes.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ISOLATIONS, fixture, withManager } = require('./helpers');
const { ConfigError, ProcessCrashedError, RemoteError } = require('titan-pm');

const fast = { restartPolicy: { initialBackoff: 10 }, output: 'ignore' };
const callsIn = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);
const tmpFile = (name) => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'titan-retries-')), name);

for (const isolation of ISOLATIONS) {
  test(`a crashed call with retries is sent again after the restart (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation, ...fast }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const file = tmpFile('calls');
      assert.equal(await calc.withOptions({ retries: 1, timeout: 20000 }).crashFirst(file, 1), 2);
      assert.equal(callsIn(file), 2);
      assert.equal((await pm.getProcess(calc)).restarts, 1);

      // Without retries the crash fails the call, sent once.
      const err = await calc.crashFirst(file, 3).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessCrashedError, String(err));
      assert.equal(callsIn(file), 3);

      // The worker's own error is not retried.
      const own = tmpFile('own');
      const failed = await calc.withOptions({ retries: 3 }).failCounted(own).then(() => null, (e) => e);
      assert.ok(failed instanceof RemoteError && failed.remoteType === 'RangeError', String(failed));
      assert.equal(callsIn(own), 1);
    }),
  );
}

test('a pool call takes retries too', { timeout: 60000 }, () =>
  withManager({ isolation: 'child', ...fast }, async (pm) => {
    const pool = await pm.pool(fixture('calculator.js'), { size: 2 });
    const file = tmpFile('calls');
    assert.equal(await pool.withOptions({ retries: 1 }).crashFirst(file, 1), 2);
  }),
);

test('a bad retries (or an unknown call option) is a ConfigError at withOptions', { timeout: 30000 }, () =>
  withManager({ isolation: 'child', ...fast }, async (pm) => {
    const calc = await pm.spawn(fixture('calculator.js'));
    for (const bad of [-1, 1.5, '2', true]) {
      assert.throws(() => calc.withOptions({ retries: bad }), (e) => e instanceof ConfigError && /retries: must be a whole number >= 0/.test(e.message));
    }
    assert.throws(() => calc.withOptions({ retrys: 1 }), (e) => e instanceof ConfigError && /retrys: unknown option/.test(e.message));
    // signal is the TS layer's own option, not refused.
    assert.equal(await calc.withOptions({ signal: new AbortController().signal, retries: 0 }).add(1, 2), 3);
  }),
);
