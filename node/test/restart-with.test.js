// `pm.restartWith(process, target, options)`: a process reloaded onto another target keeps
// its id; the new instance is ready before the old one finishes its calls (none fails), and a
// target that cannot start leaves the old instance serving. Under both isolations.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { fixture, withManager, ISOLATIONS } = require('./helpers');

for (const isolation of ISOLATIONS) {
  test(`restartWith reloads a process onto another target, keeping its id (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation }, async (pm) => {
      const proc = await pm.spawn(fixture('calculator.js'));
      await assert.rejects(proc.hold(1), 'the calculator has no hold method');
      const inFlight = proc.slow(1000);
      await new Promise((r) => setTimeout(r, 200));
      await pm.restartWith(proc, fixture('monitored.js'));
      assert.equal(await inFlight, 'done', 'the old instance finished its call');
      assert.equal(typeof (await proc.hold(1)), 'number', 'calls go to the new target under the same id');
      const info = await pm.getProcess(proc);
      assert.equal(info.state, 'running');
      assert.equal((await pm.listProcesses()).length, 1);

      await assert.rejects(pm.restartWith(proc, fixture('no-such-worker.js')));
      assert.equal(typeof (await proc.hold(1)), 'number', 'a failed reload leaves the old instance serving');
    }),
  );
}
