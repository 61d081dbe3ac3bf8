// Pools through the Node API, for worker threads and child processes: calls
// spread by the strategy, a bounded queue, scaling with its event, a crashed
// member replaced, and destroy. The balancing itself is the core's.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { ISOLATIONS, fixture, withManager, eventually } = require('./helpers');
const { CallTimeoutError, ConfigError, PoolBackpressureError, ProcessCrashedError } = require('titan-pm');

for (const isolation of ISOLATIONS) {
  test(`a pool spreads calls, bounds its queue, scales and is destroyed (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation }, async (pm) => {
      const pool = await pm.pool(fixture('calculator.js'), { size: 2, strategy: 'round-robin', maxQueueSize: 2 });
      assert.equal(pool.size, 2);
      assert.equal(typeof pool.__poolId, 'number');
      const members = await pm.listProcesses();
      assert.deepEqual(members.map((p) => p.isolation), [isolation, isolation]);
      for (let i = 0; i < 6; i++) assert.equal(await pool.add(i, 1), i + 1);
      const metrics = await pool.metrics();
      assert.deepEqual(metrics.workers.map((w) => w.requests), [3, 3], 'round-robin puts 3 calls on each worker');

      const results = await Promise.allSettled(Array.from({ length: 8 }, () => pool.slow(300)));
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(results.length - refused.length, 4, '2 running + 2 queued');
      assert.ok(refused.every((r) => r.reason instanceof PoolBackpressureError), String(refused[0]?.reason));

      const scaled = [];
      pool.on('pool:scaled', (e) => scaled.push(e));
      await pool.scale(3);
      assert.equal(pool.size, 3);
      assert.ok(await eventually(() => scaled.length === 1));
      assert.deepEqual(scaled, [{ type: 'pool:scaled', from: 2, to: 3 }]);

      const destroyed = new Promise((resolve) => pool.once('pool:destroyed', resolve));
      await pool.destroy();
      await destroyed;
    }),
  );

  test(`a pool member that crashes is replaced (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation }, async (pm) => {
      const pool = await pm.pool(fixture('calculator.js'), { size: 2 });
      const crashed = [];
      pool.on('worker:crashed', (e) => crashed.push(e.processId));
      const err = await pool.crash(5).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessCrashedError, String(err));
      assert.equal(err.exitCode, 5);
      assert.ok(await eventually(async () => crashed.length === 1 && (await pool.metrics()).workers.length === 2));
      assert.equal(await pool.add(2, 2), 4);
      assert.equal(pool.size, 2);
    }),
  );
}

for (const isolation of ISOLATIONS) {
  // Calls sent ahead to a busy member (the pool's pipeline) wait in the worker's JS runtime,
  // which starts them in order while fewer than `concurrency` run; a cancelled one never starts.
  test(`a pipelining pool still runs at most concurrency calls at once per member (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation }, async (pm) => {
      for (const concurrency of [1, 2]) {
        const pool = await pm.pool(fixture('calculator.js'), { size: 2, concurrency });
        for (let i = 0; i < 20; i++) await pool.add(i, 1); // short calls: the pool pipelines to its members
        const seen = await Promise.all(Array.from({ length: 40 }, () => pool.overlapping(1)));
        const most = Math.max(...seen.map(([n]) => n));
        assert.ok(most <= concurrency, `at most ${concurrency} ran at once in a member, saw ${most}`);
        await pool.destroy();
      }
      const pool = await pm.pool(fixture('calculator.js'), { size: 1, concurrency: 1 });
      for (let i = 0; i < 20; i++) await pool.add(i, 1);
      const [, before] = await pool.overlapping(0);
      const running = pool.overlapping(600);
      const held = await pool.withOptions({ timeout: 150 }).overlapping(0).then(() => null, (e) => e);
      assert.ok(held instanceof CallTimeoutError, String(held));
      assert.deepEqual(await running, [1, before + 1]);
      assert.deepEqual(await pool.overlapping(0), [1, before + 2], 'the call that timed out while held never started');
    }),
  );
}

test('a pool key routes consistently with consistent-hash', { timeout: 60000 }, () =>
  withManager({ isolation: 'child' }, async (pm) => {
    const pool = await pm.pool(fixture('calculator.js'), { size: 3, strategy: 'consistent-hash' });
    const pids = new Set();
    for (let i = 0; i < 5; i++) pids.add(await pool.withOptions({ key: 'user-42' }).pid());
    assert.equal(pids.size, 1);
  }),
);

test('pool options take the documented names; an unknown one is an error', { timeout: 60000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const pool = await pm.pool(fixture('calculator.js'), {
      size: 1,
      autoScale: { min: 1, max: 2, targetCPU: 90, cooldownPeriod: 500 },
      circuitBreaker: { enabled: false, threshold: 1 },
    });
    assert.equal(await pool.add(1, 2), 3);
    assert.equal((await pool.metrics()).breaker, null, 'enabled: false leaves the breaker off');
    await pool.destroy();
    await assert.rejects(
      pm.pool(fixture('calculator.js'), { size: 1, autoScale: { targetCpuu: 90 } }),
      (e) => e instanceof ConfigError && /autoScale\.targetCpuu: unknown option/.test(e.message),
    );
  }));
