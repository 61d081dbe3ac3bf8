// What a Node worker is given: @InjectProcess proxies with a host proxy's API and
// error classes (by class and by name, fields in both decorator modes, a
// constructor parameter with experimentalDecorators), across the callee's
// restart and across languages (Node -> Python, Python -> Node); nothing it was
// not given; @SharedState: 4 pool members x 250 parallel increments -> 1000.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { MODES, fixture, withManager } = require('./helpers');

const repo = path.join(__dirname, '..', '..');
const python = process.env.TITAN_TEST_PYTHON || path.join(repo, '.venv', 'bin', 'python');
const noPython = fs.existsSync(path.join(repo, 'python')) ? false : 'the Python package is not in this checkout';
const pyFile = path.join(repo, 'python', 'tests', 'workers', 'composition.py');
const fast = { restartPolicy: { initialBackoff: 20 } };

function waitFor(pm, event, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${ms} ms`)), ms);
    pm.on(event, (e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
}

/** The order-service checks shared by every pairing: `orders` was given `users` (of `lang`) and nothing else. */
async function checkOrders(pm, orders, lang, names) {
  assert.deepEqual(await orders.place(7), { order: 70, user: { id: 7, name: 'user-7', lang } });
  const failed = await orders[names.attempt]('users', 'fail', 'boom');
  assert.ok(failed.error && /boom/.test(failed.message), JSON.stringify(failed));
  const missing = await orders[names.attempt]('users', 'nope');
  assert.equal(missing.error, 'MethodNotFoundError', JSON.stringify(missing));
  const slow = await orders[names.slow](lang === 'node' ? 300 : 0.3);
  assert.deepEqual(slow, { error: 'CallTimeoutError' });
  const other = await orders[names.attempt]('other', lang === 'node' ? 'getUser' : 'get_user', 1);
  assert.equal(other.error, 'ConfigError', JSON.stringify(other));
  assert.match(other.message, /no process named "other" was given to this worker \(given: users\)/);
  // The injected handle survives the user service's restart (same process id, new pid).
  const old = await orders[names.pid]();
  const crashed = waitFor(pm, 'crash');
  process.kill(old, 'SIGKILL');
  await crashed;
  const pid = await orders[names.pid]();
  assert.notEqual(pid, old);
  assert.equal((await orders.place(2)).user.id, 2);
}

const nodeNames = { attempt: 'attempt', slow: 'slowUsers', pid: 'usersPid' };
const pyNames = { attempt: 'attempt', slow: 'slow_users', pid: 'users_pid' };

for (const mode of MODES) {
  test(`an order service calls its injected user service across a restart and nothing else (${mode} decorators)`, { timeout: 60000 }, () =>
    withManager({ isolation: 'child', ...fast }, async (pm) => {
      const users = await pm.spawn(fixture('composition.js', mode) + ':UserService');
      const other = await pm.spawn(fixture('composition.js', mode) + ':UserService');
      const orders = await pm.spawn(fixture('composition.js', mode) + ':OrderService', { processes: { users: users.__processId } });
      const failed = await orders.attempt('users', 'fail', 'boom');
      assert.deepEqual([failed.error, failed.remoteType], ['RemoteError', 'RangeError'], JSON.stringify(failed));
      await checkOrders(pm, orders, 'node', nodeNames);
      assert.equal((await other.getUser(1)).id, 1, 'the other one runs; the order service cannot reach it');
    }),
  );
}

test('an order service in a worker thread calls a given process', { timeout: 30000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const { UserService, OrderService } = require(fixture('composition.js'));
    const users = await pm.spawn(UserService);
    const orders = await pm.spawn(OrderService, { processes: { users: users.__processId } });
    assert.equal((await orders.place(3)).user.name, 'user-3');
    const other = await orders.attempt('other', 'getUser', 1);
    assert.equal(other.error, 'ConfigError', JSON.stringify(other));
  }),
);

test('a user service injected through a constructor parameter (experimental decorators)', { timeout: 30000 }, () =>
  withManager({ isolation: 'child' }, async (pm) => {
    const users = await pm.spawn(fixture('composition.js', 'experimental') + ':UserService');
    const orders = await pm.spawn(fixture('param-orders.legacy.js', 'experimental'), { processes: { users: users.__processId } });
    assert.deepEqual(await orders.place(4), { order: 40, user: { id: 4, name: 'user-4', lang: 'node' } });
  }),
);

test('Node -> Python: a Node order service calls its injected Python user service', { timeout: 60000, skip: noPython }, () =>
  withManager({ isolation: 'child', python, ...fast }, async (pm) => {
    const users = await pm.spawn(`${pyFile}:UserService`);
    const orders = await pm.spawn(fixture('composition.js') + ':OrderService', { processes: { users: users.__processId } });
    const failed = await orders.attempt('users', 'fail', 'boom');
    assert.deepEqual([failed.error, failed.remoteType], ['RemoteError', 'ValueError'], JSON.stringify(failed));
    // The Python service's method names: get_user, pid.
    assert.deepEqual((await orders.attempt('users', 'get_user', 5)).ok, { id: 5, name: 'user-5', lang: 'python' });
  }),
);

test('Python -> Node: a Python order service calls its injected Node user service', { timeout: 60000, skip: noPython }, () =>
  withManager({ isolation: 'child', python, ...fast }, async (pm) => {
    const users = await pm.spawn(fixture('composition.js') + ':UserService');
    const orders = await pm.spawn(`${pyFile}:OrderService`, { processes: { users: users.__processId } });
    // The Python order service calls get_user; the Node service has getUser: a MethodNotFoundError proves the hop.
    const missing = await orders.attempt('users', 'get_user', 1);
    assert.equal(missing.error, 'MethodNotFoundError', JSON.stringify(missing));
    const ok = await orders.attempt('users', 'getUser', 6);
    assert.deepEqual(ok.ok, { id: 6, name: 'user-6', lang: 'node' });
    const failed = await orders.attempt('users', 'fail', 'boom');
    assert.equal(failed.remote_type, 'RangeError', JSON.stringify(failed));
    assert.deepEqual(await orders.slow_users(0.3), { error: 'CallTimeoutError' });
    const old = await orders.users_pid();
    const crashed = waitFor(pm, 'crash');
    process.kill(old, 'SIGKILL');
    await crashed;
    assert.notEqual(await orders.users_pid(), old);
  }),
);

for (const mode of MODES) {
  test(`@SharedState: 4 pool members x 250 parallel increments end at 1000 (${mode} decorators)`, { timeout: 60000 }, () =>
    withManager({ isolation: 'child' }, async (pm) => {
      const counter = fixture('composition.js', mode) + ':Counter';
      const pool = await pm.pool(counter, { size: 4, maxQueueSize: 1000 });
      const results = await Promise.all(Array.from({ length: 1000 }, () => pool.incr()));
      const values = results.map(([v]) => v).sort((a, b) => a - b);
      assert.deepEqual(values, Array.from({ length: 1000 }, (_, i) => i + 1), 'every increment saw a value of its own: none lost');
      assert.equal(new Set(results.map(([, pid]) => pid)).size, 4, 'all four members incremented');
      assert.equal(await pool.get(), 1000);
      const later = await pm.spawn(counter);
      assert.equal(await later.get(), 1000, 'held by the host: a later instance reads it');
      assert.deepEqual(await later.labelRoundtrip('x'), ['none', 'x']);
    }),
  );
}

for (const mode of MODES) {
  test(`a supervised child whose async init calls its injected earlier sibling starts (${mode} decorators)`, { timeout: 30000 }, () =>
    withManager({}, async (pm) => {
      const { Composed } = require(fixture('composed-supervisor.js', mode));
      const sup = await pm.supervisor(Composed);
      const api = await sup.child('api');
      assert.deepEqual(await api.firstUser(), { id: 1, name: 'user-1', lang: 'node' });
    }),
  );
}

test('the sidecar pattern: a process handle passed as a spawn dependency is given to the worker', { timeout: 30000 }, () =>
  withManager({ isolation: 'child' }, async (pm) => {
    const main = await pm.spawn(fixture('composition.js') + ':UserService');
    const sidecar = await pm.spawn(fixture('composition.js') + ':Sidecar', { dependencies: { main, label: 'logs' } });
    assert.deepEqual(await sidecar.watch(9), { label: 'logs', user: { id: 9, name: 'user-9', lang: 'node' } });
    const bad = await pm.spawn(fixture('composition.js') + ':Sidecar', { dependencies: { main: { $process: 0 }, label: 'x' } }).then(() => null, (e) => e);
    assert.match(String(bad?.message), /dependencies.main: \$process must be a process id, not 0/);
  }),
);
