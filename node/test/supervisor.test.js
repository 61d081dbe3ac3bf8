// Supervisors from TypeScript (both decorator modes): @Supervisor/@Child read
// by the core, one-for-one restarting only the crashed child, one-for-all
// restarting every child in order, a tree, and bad options refused when the
// decorator is applied, naming the option. Children are real child processes.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MODES, eventually, fixture, withManager } = require('./helpers');
const { Child, ConfigError, Supervisor, SupervisionStrategy } = require('titan-pm');

/** The OS pid of each worker child, by name. */
async function pids(sup) {
  const out = {};
  for (const row of await sup.children()) {
    if (row.kind === 'worker') out[row.name] = await (await sup.child(row.name)).pid();
  }
  return out;
}

/** Waits until every worker child runs with `restarts` as given (by name). */
async function settled(sup, restarts) {
  return eventually(async () => {
    const rows = await sup.children();
    return rows.every((r) => r.state === 'running' && r.restarts === (restarts[r.name] ?? 0));
  }, 20_000);
}

for (const mode of MODES) {
  test(`one-for-one restarts only the crashed child (${mode})`, () =>
    withManager({}, async (pm) => {
      const { OneForOne } = require(fixture('supervisors.js', mode));
      const sup = await pm.supervisor(OneForOne);
      assert.equal(await sup.state(), 'running');
      const rows = await sup.children();
      assert.deepEqual(rows.map((r) => [r.name, r.kind, r.state, r.restarts]), [
        ['a', 'worker', 'running', 0],
        ['b', 'worker', 'running', 0],
        ['c', 'worker', 'running', 0],
      ]);
      // Listed with the supervisor's path.
      const names = (await pm.listProcesses()).map((p) => p.name).sort();
      assert.deepEqual(names, ['OneForOne/a', 'OneForOne/b', 'OneForOne/c']);
      const restarted = [];
      await sup.on('child:restarted', (e) => restarted.push(e.name));
      const before = await pids(sup);
      const b = await sup.child('b');
      process.kill(before.b, 'SIGKILL');
      assert.ok(await settled(sup, { b: 1 }), `b was not restarted once: ${JSON.stringify(await sup.children())}`);
      const after = await pids(sup);
      assert.equal(after.a, before.a, 'a was restarted');
      assert.equal(after.c, before.c, 'c was restarted');
      assert.notEqual(after.b, before.b, 'b has its old pid');
      // The handle taken before the crash still reaches b.
      assert.equal(await b.add(2, 3), 5);
      assert.ok(await eventually(() => restarted.length === 1), 'no child:restarted event');
      assert.deepEqual(restarted, ['b']);
      await sup.stop();
      assert.equal(await sup.state(), 'stopped');
    }));

  test(`one-for-all restarts every child, in order (${mode})`, () =>
    withManager({}, async (pm) => {
      const { OneForAll } = require(fixture('supervisors.js', mode));
      const sup = await pm.supervisor(OneForAll);
      const restarted = [];
      await sup.on('child:restarted', (e) => restarted.push(e.name));
      const before = await pids(sup);
      process.kill(before.b, 'SIGKILL');
      assert.ok(await settled(sup, { a: 1, b: 1, c: 1 }), `not every child restarted once: ${JSON.stringify(await sup.children())}`);
      const after = await pids(sup);
      for (const name of ['a', 'b', 'c']) assert.notEqual(after[name], before[name], `${name} has its old pid`);
      assert.ok(await eventually(() => restarted.length === 3), `restarted: ${restarted}`);
      assert.deepEqual(restarted, ['a', 'b', 'c']);
      assert.equal(await sup.state(), 'running');
    }));

  test(`a tree: a nested supervisor restarts its own child (${mode})`, () =>
    withManager({}, async (pm) => {
      const sup = await pm.supervisor(fixture('supervisors.js', mode)); // the file's default export
      const rows = await sup.children();
      assert.deepEqual(rows.map((r) => [r.name, r.kind]), [['database', 'worker'], ['services', 'supervisor']]);
      const names = (await pm.listProcesses()).map((p) => p.name).sort();
      assert.deepEqual(names, ['app/database', 'app/services/a', 'app/services/b', 'app/services/c']);
      const services = sup.supervisor('services');
      const before = await pids(services);
      process.kill(before.c, 'SIGKILL');
      assert.ok(await settled(services, { c: 1 }), 'the nested c was not restarted');
      assert.equal((await pids(services)).a, before.a);
      assert.equal((await sup.children())[1].restarts, 0, 'the nested supervisor itself was restarted');
    }));

  test(`bad supervisor options fail when the decorator is applied (${mode})`, () => {
    assert.throws(() => require(fixture('bad-supervisor.js', mode)), (e) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /^@Supervisor\(\): .*maxRestart: unknown option/);
      return true;
    });
  });
}

test('bad @Supervisor and @Child options name the option', () => {
  const refused = (fn, pattern) =>
    assert.throws(fn, (e) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  refused(() => Supervisor({ strategy: 'one-for-some' }), /^@Supervisor\(\): .*strategy: unknown supervision strategy/);
  refused(() => Supervisor({ windw: 1000 }), /^@Supervisor\(\): .*windw: unknown option/);
  refused(() => Supervisor({ maxRestarts: -1 }), /^@Supervisor\(\): .*maxRestarts/);
  refused(() => Child({ critcal: true }), /^@Child\(\): .*critcal: unknown option/);
  refused(() => Child({ restart: 'sometimes' }), /^@Child\(\): .*restart/);
  refused(() => Child({ pool: { sise: 2 } }), /^@Child\(\): .*pool\.sise: unknown option/);
  refused(() => Child({ critical: true, optional: true }), /^@Child\(\): .*critical and optional exclude each other/);
  refused(() => Child({ restartPolicy: { maxRestarts: 1 } }), /^@Child\(\): .*restartPolicy: a supervised child's restarts belong to its supervisor/);
  refused(() => Child('critical'), /^@Child\(\) options must be an object, not string/);
  // Good ones pass, the enum and the strings alike.
  assert.equal(typeof Supervisor({ strategy: SupervisionStrategy.REST_FOR_ONE, maxRestarts: 2, window: '5s' }), 'function');
  assert.equal(typeof Child({ critical: true, pool: { size: 2, strategy: 'least-loaded' }, env: { A: '1' } }), 'function');
  assert.equal(SupervisionStrategy.SIMPLE_ONE_FOR_ONE, 'simple-one-for-one');
});

test('pm.supervisor refuses what is not a @Supervisor class', () =>
  withManager({}, async (pm) => {
    await assert.rejects(pm.supervisor(class Plain {}), (e) => e instanceof ConfigError && /Plain is not a @Supervisor class/.test(e.message));
    await assert.rejects(pm.supervisor(fixture('calculator.js')), (e) => e instanceof ConfigError && /does not export a @Supervisor class/.test(e.message));
  }));
