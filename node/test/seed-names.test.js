// The seed's names in Node: spawn and pool of a @Process class (isolation
// `none` on this thread, `worker` from the class's module file, `child` a
// ConfigError naming the fix), the PoolStrategy names beside the strings,
// pool breaker states and events in core's spelling, and spawn+kill cycles
// that leave the process list short.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MODES, fixture, withManager, eventually } = require('./helpers');
const { ConfigError, PoolStrategy, Process, ProcessFailedError, Public, definitionOf } = require('titan-pm');

for (const mode of MODES) {
  test(`@Process records the class's module file, and @HealthCheck its interval (${mode} decorators)`, () => {
    const { Greeter } = require(fixture('classes.js', mode));
    const def = definitionOf(Greeter);
    assert.equal(def.file, fixture('classes.js', mode));
    assert.equal(def.healthInterval, 100);
  });

  test(`spawn of a @Process class with isolation none runs it on this thread (${mode} decorators)`, { timeout: 30000 }, () =>
    withManager({ isolation: 'none' }, async (pm) => {
      const { Greeter, Other } = require(fixture('classes.js', mode));
      const g = await pm.spawn(Greeter, { dependencies: { greeting: 'hi' } });
      assert.equal(await g.greet('ada'), 'hi ada');
      assert.equal(await g.isMainThread(), true);
      assert.equal(await g.pid(), process.pid);
      const info = await pm.getProcess(g);
      assert.equal(info.name, 'greeter');
      assert.equal(info.isolation, 'none');
      const o = await pm.spawn(Other);
      assert.equal(await o.who(), 'other');
    }),
  );

  test(`spawn and pool of a @Process class with isolation worker load its module in a worker thread (${mode} decorators)`, { timeout: 30000 }, () =>
    withManager({ isolation: 'worker' }, async (pm) => {
      const { Greeter } = require(fixture('classes.js', mode));
      const g = await pm.spawn(Greeter);
      assert.equal(await g.greet('ada'), 'hello ada');
      assert.equal(await g.isMainThread(), false);
      assert.equal((await pm.getProcess(g)).isolation, 'worker');
      const pool = await pm.pool(Greeter, { size: 2, strategy: PoolStrategy.ROUND_ROBIN });
      assert.deepEqual(await Promise.all([pool.greet('a'), pool.greet('b')]), ['hello a', 'hello b']);
      assert.equal((await pool.metrics()).workers.length, 2);
    }),
  );
}

test('spawn of a default-exported class from an ES module loads that module in a worker thread', { timeout: 30000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const { default: EsmCalculator } = await import(require('node:url').pathToFileURL(fixture('esm-calculator.mjs')).href);
    assert.equal(definitionOf(EsmCalculator).file, fixture('esm-calculator.mjs'));
    const calc = await pm.spawn(EsmCalculator);
    assert.equal((await pm.getProcess(calc)).name, 'esm-calculator');
    assert.equal(await calc.add(2, 3), 5);
  }),
);

test('spawn of a class with isolation child is a ConfigError that says to spawn the file', { timeout: 30000 }, () =>
  withManager({ isolation: 'child' }, async (pm) => {
    const { Greeter } = require(fixture('classes.js'));
    await assert.rejects(pm.spawn(Greeter), (e) => e instanceof ConfigError && /spawn the file/.test(e.message) && e.message.includes('classes.js'));
  }),
);

test('spawn of a class whose file is unknown: worker is a ConfigError naming the fix, none works', { timeout: 30000 }, () =>
  withManager({}, async (pm) => {
    class Inline {
      hi() {
        return 'hi';
      }
    }
    Public()(Inline.prototype, 'hi', Object.getOwnPropertyDescriptor(Inline.prototype, 'hi'));
    Process({ name: 'inline' })(Inline);
    // This test file is not a worker module: a worker thread must not load it.
    Object.defineProperty(Inline, Symbol.for('titan-pm.file'), { value: undefined });
    await assert.rejects(pm.spawn(Inline), (e) => e instanceof ConfigError && /spawn the file instead, or use isolation 'none'/.test(e.message));
    const h = await pm.spawn(Inline, { isolation: 'none' });
    assert.equal(await h.hi(), 'hi');
    await assert.rejects(pm.spawn(class NotDecorated {}), (e) => e instanceof ConfigError && /@Process class/.test(e.message));
  }),
);

test('PoolStrategy names the kebab-case strings, and each is a strategy the core accepts', { timeout: 60000 }, () =>
  withManager({ isolation: 'none' }, async (pm) => {
    assert.equal(PoolStrategy.LEAST_LOADED, 'least-loaded');
    assert.equal(PoolStrategy.POWER_OF_TWO, 'power-of-two');
    assert.ok(Object.isFrozen(PoolStrategy));
    for (const strategy of Object.values(PoolStrategy)) {
      const pool = await pm.pool(fixture('calculator.js'), { size: 1, strategy });
      assert.equal(await pool.add(1, 2), 3, strategy);
      await pool.destroy();
    }
  }),
);

test("pool breaker state and events use core's spelling (closed, open, half-open; processId)", { timeout: 60000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const pool = await pm.pool(fixture('calculator.js'), {
      size: 1,
      restartPolicy: { backoff: { initial: 10 } },
      circuitBreaker: { threshold: 1, timeout: 200, halfOpenRequests: 1 },
    });
    const events = [];
    for (const name of ['circuitbreaker:open', 'circuitbreaker:halfopen', 'circuitbreaker:close', 'worker:crashed']) {
      pool.on(name, (e) => events.push([name, e]));
    }
    assert.equal((await pool.metrics()).breaker, 'closed');
    await pool.crash(1).catch(() => {});
    assert.ok(await eventually(() => events.some(([n]) => n === 'circuitbreaker:open')), JSON.stringify(events));
    assert.equal((await pool.metrics()).breaker, 'open');
    assert.ok(await eventually(() => events.some(([n]) => n === 'worker:crashed')), JSON.stringify(events));
    const crashed = events.find(([n]) => n === 'worker:crashed');
    assert.equal(typeof crashed?.[1].processId, 'number', JSON.stringify(events));
    assert.equal(events.find(([n]) => n === 'circuitbreaker:open')[1].state, 'open');
    // After `timeout` the next call is the half-open trial; its success closes the breaker.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await pool.add(1, 2), 3);
    assert.ok(await eventually(() => events.some(([n]) => n === 'circuitbreaker:close')), JSON.stringify(events));
    assert.equal(events.find(([n]) => n === 'circuitbreaker:halfopen')[1].state, 'half-open');
    assert.equal(events.find(([n]) => n === 'circuitbreaker:close')[1].state, 'closed');
    assert.equal((await pool.metrics()).breaker, 'closed');
  }),
);

test('300 spawn+kill cycles leave the list short, and a call to a killed id is a ProcessFailedError', { timeout: 120000 }, () =>
  withManager({ isolation: 'none' }, async (pm) => {
    const { Greeter } = require(fixture('classes.js'));
    const killed = [];
    for (let i = 0; i < 300; i++) {
      const h = i % 2 ? await pm.spawn(Greeter) : await pm.spawn(fixture('calculator.js'));
      await pm.kill(h);
      if (i === 0 || i === 150 || i === 299) killed.push(h);
    }
    const keep = await pm.spawn(fixture('calculator.js'));
    assert.ok(await eventually(async () => (await pm.listProcesses()).length === 1), `listed: ${(await pm.listProcesses()).length}`);
    assert.deepEqual((await pm.listProcesses()).map((p) => p.processId), [keep.__processId]);
    for (const h of killed) {
      const err = await h.add(1, 1).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessFailedError, `process ${h.__processId}: ${err}`);
    }
    assert.equal(await keep.add(1, 1), 2);
  }),
);
