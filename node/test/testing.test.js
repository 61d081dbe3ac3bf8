// titan-pm/testing on real workers: the seed's "Example Test Suite" (restart after
// a crash, a health override, two spawns -> two spawn operations), crashes through
// the real restart policy on each isolation, injected failures, options read by
// the core, and a clock the test moves.
'use strict';
const { test, describe, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { fixture } = require('./helpers');
const { ConfigError, ProcessFailedError, RemoteError, SpawnError } = require('titan-pm');
const { createTestProcessManager } = require('titan-pm/testing');

const Calculator = require(fixture('calculator.js')).default;

// ---- the seed's example tests, as written there ----

describe('Calculator Process', () => {
  let pm;

  beforeEach(() => {
    pm = createTestProcessManager({ isolation: 'none', output: 'ignore' });
  });

  afterEach(async () => {
    await pm.cleanup();
  });

  test('should restart after crash', { timeout: 30000 }, async () => {
    const calc = await pm.spawn(Calculator);
    await pm.simulateCrash(calc.__processId);
    const recovered = await pm.waitForRecovery(calc.__processId, 5000);
    assert.equal(recovered, true);
    assert.equal(pm.verifyOperation('restart', (op) => op.processId === calc.__processId), true);
    assert.equal(await calc.add(2, 3), 5);
  });

  test('should report health overrides', { timeout: 30000 }, async () => {
    const calc = await pm.spawn(Calculator);
    pm.setHealth(calc.__processId, { status: 'unhealthy', checks: [{ name: 'db', status: 'fail', message: 'down' }] });
    const health = await pm.getHealth(calc.__processId);
    assert.equal(health.status, 'unhealthy');
    assert.equal(health.checks[0].name, 'db');
    pm.setMetrics(calc.__processId, { cpu: 95, memory: 1024 });
    const metrics = await pm.getMetrics(calc.__processId);
    assert.equal(metrics.cpu, 95);
    assert.equal(metrics.memory, 1024);
    assert.throws(() => pm.setMetrics(calc.__processId, { latency: { p51: 1 } }), (e) => e instanceof ConfigError && /latency\.p51: unknown option/.test(e.message));
  });

  test('should track operations', { timeout: 30000 }, async () => {
    const a = await pm.spawn(Calculator);
    const b = await pm.spawn(Calculator);
    const spawns = pm.getOperations().filter((op) => op.type === 'spawn');
    assert.equal(spawns.length, 2);
    assert.deepEqual(spawns.map((op) => [op.processClass, op.processId]), [['calculator', a.__processId], ['calculator', b.__processId]]);
    await a.add(1, 1);
    assert.ok(pm.verifyOperation('call', (op) => op.method === 'add' && op.outcome === 'ok'));
  });
});

// ---- crashes through the real restart policy ----

for (const isolation of ['none', 'worker', 'child']) {
  test(`simulateCrash recovers three times and the 4th spends the budget (${isolation})`, { timeout: 60000 }, async () => {
    const pm = createTestProcessManager({ isolation, output: 'ignore', restartPolicy: { initialBackoff: 10 } });
    try {
      const calc = await pm.spawn(fixture('calculator.js'));
      for (let n = 1; n <= 3; n++) {
        await pm.simulateCrash(calc);
        assert.equal(await pm.waitForRecovery(calc, 10000), true, `crash ${n}`);
        assert.equal(await calc.add(n, 1), n + 1);
      }
      await pm.simulateCrash(calc);
      assert.equal(await pm.waitForRecovery(calc, 1000), false);
      assert.equal((await pm.getProcess(calc)).state, 'failed');
      await assert.rejects(calc.add(1, 1), ProcessFailedError);
      assert.equal(pm.getOperations().filter((op) => op.type === 'restart').length, 3);
    } finally {
      await pm.cleanup();
    }
  });
}

// ---- injected failures ----

test('simulateFailure(spawn:X) fails exactly the next spawn', { timeout: 30000 }, async () => {
  const pm = createTestProcessManager({ output: 'ignore' });
  try {
    pm.simulateFailure('spawn:calculator', new Error('no capacity'));
    await assert.rejects(pm.spawn(Calculator), (e) => e instanceof SpawnError && /no capacity/.test(e.message));
    const calc = await pm.spawn(Calculator);
    assert.equal(await calc.add(1, 2), 3);
    assert.throws(() => pm.simulateFailure('explode:x', 'boom'), (e) => e instanceof ConfigError && /unknown operation/.test(e.message));
  } finally {
    await pm.cleanup();
  }
});

test('simulateFailure(call:Name.method) fails the next such call with the error type', { timeout: 30000 }, async () => {
  const pm = createTestProcessManager({ output: 'ignore' });
  try {
    const calc = await pm.spawn(Calculator);
    pm.simulateFailure('call:calculator.add', new TypeError('injected'));
    await assert.rejects(calc.add(1, 2), (e) => e instanceof RemoteError && e.remoteType === 'TypeError' && /injected/.test(e.message));
    assert.equal(await calc.add(1, 2), 3);
  } finally {
    await pm.cleanup();
  }
});

// ---- options and the clock ----

test('options are read by the core: unknown ones are named', () => {
  assert.throws(() => createTestProcessManager({ recordOps: true }), (e) => e instanceof ConfigError && /recordOps: unknown option/.test(e.message));
});

test('a negative advanceTime or waitForRecovery timeout is a ConfigError', { timeout: 30000 }, async () => {
  const pm = createTestProcessManager({ output: 'ignore', controlTime: true });
  try {
    await assert.rejects(pm.advanceTime(-1), (e) => e instanceof ConfigError && /ms: must be a number of ms >= 0/.test(e.message));
    await assert.rejects(pm.waitForRecovery(1, Number.NaN), (e) => e instanceof ConfigError && /timeout/.test(e.message));
  } finally {
    await pm.cleanup();
  }
});

test('advanceTime drives a restart backoff without sleeping', { timeout: 30000 }, async () => {
  const started = Date.now();
  const pm = createTestProcessManager({ output: 'ignore', controlTime: true, restartPolicy: { initialBackoff: 10000 } });
  try {
    const calc = await pm.spawn(Calculator);
    const t0 = pm.getCurrentTime();
    await pm.simulateCrash(calc);
    assert.equal(await pm.waitForRecovery(calc, 200), false);
    await pm.advanceTime(10000);
    assert.equal(await pm.waitForRecovery(calc, 10000), true);
    assert.equal(pm.getCurrentTime() - t0, 10000);
    assert.ok(pm.verifyOperation('restart', (op) => op.delay === 10000));
    pm.resetTime();
    assert.ok(Math.abs(pm.getCurrentTime() - Date.now()) < 1000);
  } finally {
    await pm.cleanup();
  }
  assert.ok(Date.now() - started < 6000, `took ${Date.now() - started} ms`); // generous, well under the 10 s backoff
});

// ---- cleanup sees the runtimes the bridge owns ----

test('cleanup names a worker thread that outlived the shutdown', { timeout: 30000 }, async () => {
  // The core tears the instance down at the shutdown, but the JS worker thread is stuck in
  // native code until its `sleep` ends: the bridge counts it live until its exit (titan_pm::host::live).
  const pm = createTestProcessManager({ output: 'ignore', shutdownTimeout: 300 });
  const stuck = await pm.spawn(fixture('blocking.js'), { isolation: 'worker', name: 'stuck' });
  const call = stuck.blockNative(5).catch((e) => e);
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  await assert.rejects(pm.cleanup(), (e) => e instanceof ConfigError && /stuck \(process \d+, a node worker thread\)/.test(e.message));
  assert.ok((await call) instanceof Error);
  // Once the thread exits it is released: a second check is quiet.
  await new Promise((r) => setTimeout(r, Math.max(0, 5500 - (Date.now() - started))));
  await pm.cleanup();
});

test('cleanup is quiet once in-process and worker-thread runtimes ended', { timeout: 30000 }, async () => {
  const pm = createTestProcessManager({ output: 'ignore' });
  const inline = await pm.spawn(Calculator, { isolation: 'none' });
  const thread = await pm.spawn(fixture('blocking.js'), { isolation: 'worker' });
  assert.equal(await inline.add(1, 2), 3);
  assert.equal(await thread.ping(), 'pong');
  await pm.simulateCrash(thread.__processId);
  assert.equal(await pm.waitForRecovery(thread.__processId, 10000), true);
  await pm.cleanup();
});
