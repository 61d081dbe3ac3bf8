// Calls through the typed proxy, for worker-thread and child-process workers
// compiled under both decorator modes: results, state, dependencies, health,
// metrics, process info and events.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { ISOLATIONS, MODES, fixture, source, withManager } = require('./helpers');

for (const isolation of ISOLATIONS) {
  for (const mode of MODES) {
    test(`calculator: results, state and dependencies (${isolation}, ${mode} decorators)`, { timeout: 30000 }, () =>
      withManager({ isolation }, async (pm) => {
        const calc = await pm.spawn(fixture('calculator.js', mode), { dependencies: { config: { unit: 'm' }, label: 'calc-1' } });
        assert.equal(await calc.add(5, 3), 8);
        assert.equal(await calc.addAsync(2, 2), 4);
        assert.equal(await calc.increment(), 1);
        assert.equal(await calc.increment(), 2);
        assert.deepEqual(await calc.dependencies(), [{ unit: 'm' }, 'calc-1']);
        assert.equal(typeof calc.__processId, 'number');
      }),
    );
  }

  test(`health, metrics, process info and events (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const events = [];
      for (const name of ['spawn', 'ready']) pm.on(name, (e) => events.push([name, e.processId]));
      const calc = await pm.spawn(fixture('calculator.js'));
      await calc.increment();
      const health = await pm.getHealth(calc.__processId);
      assert.equal(health.status, 'degraded');
      assert.deepEqual(health.checks, [{ name: 'calc', status: 'warn', message: 'count 1' }]);
      assert.ok(health.timestamp > Date.now() - 60000);
      const metrics = await pm.getMetrics(calc);
      assert.equal(metrics.requests, 1);
      assert.equal(metrics.errors, 0);
      assert.ok(metrics.latency.p50 > 0 && metrics.memory > 0, JSON.stringify(metrics));
      const info = await pm.getProcess(calc);
      assert.deepEqual(
        { ...info, pid: typeof info.pid },
        { processId: calc.__processId, name: 'calculator', pid: 'number', state: 'running', restarts: 0, isolation, transport: 'ipc' },
      );
      assert.equal(info.pid === process.pid, isolation === 'worker');
      assert.deepEqual((await pm.listProcesses()).map((p) => p.processId), [calc.__processId]);
      assert.deepEqual(events, [['spawn', calc.__processId], ['ready', calc.__processId]]);
    }),
  );

  test(`ESM export default and CommonJS module.exports targets (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const esm = await pm.spawn(fixture('esm-calculator.mjs'));
      assert.equal(await esm.add(1, 2), 3);
      const cjs = await pm.spawn(source('module-exports.cjs'));
      assert.equal(await cjs.add(3, 4), 7);
      assert.deepEqual((await pm.listProcesses()).map((p) => p.name), ['esm-calculator', 'adder']);
    }),
  );

  test(`worker output reaches an output callback, per manager or per spawn (${isolation})`, { timeout: 30000 }, async () => {
    const { ProcessManager } = require('titan-pm');
    const managerLines = [];
    const spawnLines = [];
    const pm = new ProcessManager({ isolation, output: (stream, name, pid, line) => managerLines.push([stream, name, typeof pid, line]) });
    try {
      const a = await pm.spawn(fixture('calculator.js'));
      const b = await pm.spawn(fixture('calculator.js'), { output: (stream, name, pid, line) => spawnLines.push([stream, line]) });
      await a.log('from a');
      await b.log('from b');
      const { eventually } = require('./helpers');
      assert.ok(await eventually(() => managerLines.length === 2 && spawnLines.length === 2), JSON.stringify({ managerLines, spawnLines }));
      assert.deepEqual(managerLines.sort(), [['stderr', 'calculator', 'number', 'err: from a'], ['stdout', 'calculator', 'number', 'from a']]);
      assert.deepEqual(spawnLines.sort(), [['stderr', 'err: from b'], ['stdout', 'from b']]);
    } finally {
      await pm.shutdown();
    }
  });

  for (const transport of ['unix', 'tcp', 'http']) {
    test(`transport ${transport} (${isolation})`, { timeout: 30000 }, () =>
      withManager({ isolation, transport }, async (pm) => {
        const calc = await pm.spawn(fixture('calculator.js'));
        assert.equal(await calc.add(20, 22), 42);
      }),
    );
  }
}

test('isolation none runs the worker on the host thread', { timeout: 30000 }, () =>
  withManager({ isolation: 'none' }, async (pm) => {
    const calc = await pm.spawn(fixture('calculator.js', 'experimental'));
    assert.equal(await calc.add(1, 1), 2);
    assert.equal(await calc.increment(), 1);
    assert.equal((await pm.getProcess(calc)).isolation, 'none');
  }),
);

test('the default isolation of a Node host is a worker thread', { timeout: 30000 }, () =>
  withManager({}, async (pm) => {
    const calc = await pm.spawn(fixture('calculator.js'));
    assert.equal(await calc.pid(), process.pid);
    assert.equal((await pm.getProcess(calc)).isolation, 'worker');
  }),
);

test('createProcessManager and per-spawn isolation', { timeout: 30000 }, async () => {
  const { createProcessManager } = require('titan-pm');
  const pm = createProcessManager({ isolation: 'worker', output: 'ignore' });
  try {
    const child = await pm.spawn(fixture('calculator.js'), { isolation: 'child' });
    assert.notEqual(await child.pid(), process.pid);
  } finally {
    await pm.shutdown();
  }
});

test('the package loads from import and from require, as one module', { timeout: 30000 }, async () => {
  const esm = await import('titan-pm');
  const cjs = require('titan-pm');
  assert.equal(esm.ProcessManager, cjs.ProcessManager);
  assert.equal(esm.SpawnError, cjs.SpawnError);
  assert.equal(typeof esm.Process, 'function');
});
