// The seed's configuration as users write it (brief §7): the whole block is
// accepted, unknown keys are ConfigErrors naming their path, and each part
// does what it says: linear backoff, resources.timeout as the call deadline,
// resources.maxMemory (a child restarted with the `memory` event, a worker
// thread's heap limit), periodic health restarting an unhealthy worker,
// pass/warn/fail checks, autoScale.targetMemory as a percent, spawn `version`.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { fixture, withManager, eventually } = require('./helpers');
const { CallTimeoutError, ConfigError, ProcessCrashedError, ProcessManager, SpawnError } = require('titan-pm');

const SEED = {
  isolation: 'worker',
  transport: 'ipc',
  restartPolicy: { enabled: true, maxRestarts: 3, window: 60000, backoff: { type: 'exponential', initial: 100, max: 30000 } },
  resources: { maxMemory: '512MB', maxCpu: 50, timeout: 30000 },
  monitoring: { healthCheck: { interval: 5000, timeout: 2000 }, metrics: true, tracing: true },
};

test("the seed's whole configuration block is accepted, and works", { timeout: 30000 }, async () => {
  for (const config of [SEED, { ...SEED, isolation: 'child', monitoring: { ...SEED.monitoring, healthCheck: true } }]) {
    await withManager(config, async (pm) => {
      const w = await pm.spawn(fixture('monitored.js'), { version: '2.0.0', resources: { maxMemory: '1GB', timeout: 5000 } });
      assert.equal(typeof (await w.pid()), 'number');
    });
  }
});

test('an unknown option is a ConfigError naming its path, at every level', { timeout: 30000 }, async () => {
  const refused = (f, path) =>
    assert.rejects(async () => f(), (e) => e instanceof ConfigError && e.message.includes(`${path}: unknown option`), `${path} is refused`);
  await refused(() => new ProcessManager({ monitorng: {} }), 'monitorng');
  await refused(() => new ProcessManager({ resources: { maxMem: 1 } }), 'resources.maxMem');
  await refused(() => new ProcessManager({ restartPolicy: { backoff: { kind: 'linear' } } }), 'restartPolicy.backoff.kind');
  await withManager({}, async (pm) => {
    await refused(() => pm.spawn(fixture('monitored.js'), { versoin: '2.0.0' }), 'versoin');
    await refused(() => pm.spawn(fixture('monitored.js'), { isolation: 'child', versoin: '2.0.0' }), 'versoin');
    await refused(() => pm.spawn(fixture('monitored.js'), { resources: { maxMem: 1 } }), 'resources.maxMem');
    await refused(() => pm.pool(fixture('monitored.js'), { size: 1, autoScale: { targetCPUs: 50 } }), 'autoScale.targetCPUs');
    await refused(() => pm.pool(fixture('monitored.js'), { size: 1, isolation: 'child', autoScale: { targetCPUs: 50 } }), 'autoScale.targetCPUs');
    await refused(() => pm.pool(fixture('monitored.js'), { sise: 1 }), 'sise');
    // Nothing was started for the refused options.
    assert.deepEqual(await pm.listProcesses(), []);
  });
});

test('a bad option value names its path', { timeout: 30000 }, async () => {
  assert.throws(() => new ProcessManager({ resources: { maxMemory: 'lots' } }), (e) => e instanceof ConfigError && /resources\.maxMemory/.test(e.message));
  assert.throws(
    () => new ProcessManager({ restartPolicy: { backoff: { type: 'cubic' } } }),
    (e) => e instanceof ConfigError && /restartPolicy\.backoff\.type/.test(e.message),
  );
});

test('a linear backoff waits initial × n before the n-th restart', { timeout: 60000 }, () =>
  withManager(
    { isolation: 'child', restartPolicy: { maxRestarts: 5, window: 60000, backoff: { type: 'linear', initial: 100, max: 10000 } } },
    async (pm) => {
      const delays = [];
      pm.on('restart', (e) => delays.push(e.delay));
      const calc = await pm.spawn(fixture('calculator.js'));
      for (let i = 0; i < 3; i++) {
        const err = await calc.crash(1).then(() => null, (e) => e);
        assert.ok(err instanceof ProcessCrashedError, String(err));
        assert.equal(await calc.add(1, 1), 2); // waits for the restarted instance
      }
      assert.deepEqual(delays, [100, 200, 300]);
    },
  ));

test('resources.timeout is every call’s deadline', { timeout: 30000 }, async () => {
  for (const isolation of ['worker', 'child']) {
    await withManager({ isolation, resources: { timeout: 200 } }, async (pm) => {
      const w = await pm.spawn(fixture('monitored.js'));
      const started = Date.now();
      const err = await w.slow(10000).then(() => null, (e) => e);
      assert.ok(err instanceof CallTimeoutError, String(err));
      assert.equal(err.timeoutMs, 200);
      assert.ok(Date.now() - started < 5000);
      assert.equal(await w.slow(1), 'done');
    });
    // Per spawn too.
    await withManager({ isolation }, async (pm) => {
      const w = await pm.spawn(fixture('monitored.js'), { resources: { timeout: 150 } });
      const err = await w.slow(10000).then(() => null, (e) => e);
      assert.equal(err?.timeoutMs, 150, String(err));
    });
  }
});

test('a child worker above resources.maxMemory is restarted with the memory event', { timeout: 60000 }, () =>
  withManager({ isolation: 'child', resources: { maxMemory: '200MB' }, restartPolicy: { backoff: { initial: 10 } } }, async (pm) => {
    const events = [];
    for (const name of ['memory', 'restart']) pm.on(name, (e) => events.push({ name, ...e }));
    const w = await pm.spawn(fixture('monitored.js'));
    const pid = await w.pid();
    await w.hold(300).catch(() => {}); // the kill may come while the call is in flight
    assert.ok(await eventually(() => events.some((e) => e.name === 'restart'), 20000), JSON.stringify(events));
    const memory = events.find((e) => e.name === 'memory');
    assert.ok(memory, JSON.stringify(events));
    assert.equal(memory.processId, w.__processId);
    assert.equal(memory.limit, 200 * 2 ** 20);
    assert.ok(memory.rss > memory.limit, JSON.stringify(memory));
    assert.notEqual(await w.pid(), pid, 'a new instance serves the process');
    assert.equal((await pm.getProcess(w)).restarts, 1);
  }));

test('a worker thread gets resources.maxMemory as its heap limit', { timeout: 60000 }, () =>
  withManager({ isolation: 'worker', restartPolicy: { backoff: { initial: 10 } } }, async (pm) => {
    const crashes = [];
    pm.on('crash', (e) => crashes.push(e));
    const w = await pm.spawn(fixture('monitored.js'), { resources: { maxMemory: '64MB' } });
    const err = await w.holdHeap(512).then(() => null, (e) => e);
    assert.ok(err instanceof ProcessCrashedError, `the thread ran out of heap: ${err}`);
    assert.ok(await eventually(() => crashes.length === 1), 'one crash event');
    assert.equal(typeof (await w.pid()), 'number', 'the process was restarted');
    // Without the limit the same allocation succeeds.
    const free = await pm.spawn(fixture('monitored.js'));
    assert.ok((await free.holdHeap(128)) > 0);
  }));

test('periodic health restarts a worker whose check turns unhealthy (event unhealthy)', { timeout: 60000 }, async () => {
  for (const isolation of ['worker', 'child']) {
    await withManager({ isolation, monitoring: { healthCheck: { interval: 100 } }, restartPolicy: { backoff: { initial: 10 } } }, async (pm) => {
      const unhealthy = [];
      pm.on('unhealthy', (e) => unhealthy.push(e));
      const w = await pm.spawn(fixture('monitored.js'));
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(unhealthy, [], 'a healthy worker is left alone');
      await w.setCheck('fail');
      assert.ok(await eventually(() => unhealthy.length > 0, 15000), `no unhealthy event (${isolation})`);
      assert.equal(unhealthy[0].processId, w.__processId);
      assert.equal(unhealthy[0].probes, 3);
      assert.ok(await eventually(async () => (await pm.getProcess(w)).restarts === 1, 15000));
      assert.equal(await w.setCheck('pass').then(() => 'answered'), 'answered', 'the new instance serves calls');
      assert.ok(await eventually(async () => (await pm.getHealth(w)).status === 'healthy', 5000), 'the new instance is healthy');
    });
  }
});

test('@HealthCheck({ interval }) probes that class without manager monitoring', { timeout: 60000 }, async () => {
  const { Greeter } = require(fixture('classes.js'));
  await withManager({ isolation: 'none', restartPolicy: { backoff: { initial: 10 } } }, async (pm) => {
    const unhealthy = [];
    pm.on('unhealthy', (e) => unhealthy.push(e));
    const g = await pm.spawn(Greeter);
    await g.turnUnhealthy();
    assert.ok(await eventually(() => unhealthy.length > 0, 15000), 'the class interval drives the probes');
  });
});

test('a warn check makes the report degraded and keeps the check status', { timeout: 30000 }, async () => {
  for (const isolation of ['worker', 'child']) {
    await withManager({ isolation }, async (pm) => {
      const w = await pm.spawn(fixture('monitored.js'));
      assert.equal((await pm.getHealth(w)).status, 'healthy');
      await w.setCheck('warn');
      const h = await pm.getHealth(w);
      assert.equal(h.status, 'degraded');
      assert.deepEqual(h.checks, [{ name: 'state', status: 'warn', message: 'set to warn' }]);
      await w.setCheck('fail');
      assert.equal((await pm.getHealth(w)).status, 'unhealthy');
    });
  }
});

test('autoScale.targetMemory is a percent of the machine: an idle pool stays at min', { timeout: 30000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const pool = await pm.pool(fixture('monitored.js'), { size: 1, autoScale: { targetMemory: 80, min: 1, max: 3, interval: 50 } });
    const scaled = [];
    pool.on('pool:scaled', (e) => scaled.push(e));
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(scaled, []);
    assert.equal((await pool.metrics()).size, 1);
  }));

test('spawn version: a match spawns, a mismatch is a SpawnError', { timeout: 30000 }, async () => {
  for (const isolation of ['worker', 'child', 'none']) {
    await withManager({ isolation }, async (pm) => {
      const w = await pm.spawn(fixture('monitored.js'), { version: '2.0.0' });
      assert.equal(typeof (await w.pid()), 'number');
      const err = await pm.spawn(fixture('monitored.js'), { version: '1.0.0' }).then(() => null, (e) => e);
      assert.ok(err instanceof SpawnError, `${isolation}: ${err}`);
      assert.match(err.message, /2\.0\.0/);
      assert.match(err.message, /1\.0\.0/);
    });
  }
});
