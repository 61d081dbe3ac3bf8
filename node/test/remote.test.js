// Remote Node workers: `titan-pm-worker --connect ...` started by the test (as an
// orchestrator would) dials a host that listens with mutual TLS (certificates from
// scripts/make-certs.sh), joins `remote:js`, serves a pool, fails its in-flight
// call at once when killed, rejoins when started again, and drains on SIGTERM.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fixture, withManager, eventually } = require('./helpers');
const { ConfigError, ProcessCrashedError } = require('titan-pm');

const BIN = path.join(__dirname, '..', 'dist', 'worker', 'bin.js');
const MAKE_CERTS = path.join(__dirname, '..', '..', 'scripts', 'make-certs.sh');

function certs() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'titan-certs-'));
  execFileSync('bash', [MAKE_CERTS, dir], { stdio: 'ignore', timeout: 60000 });
  return dir;
}

function cleanEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TITAN_')));
  return { ...env, ...extra };
}

function dial(addr, dir, name = 'js') {
  const args = [BIN, '--connect', addr, '--name', name, '--token', 't0ken'];
  args.push('--tls-cert', path.join(dir, 'worker.crt'), '--tls-key', path.join(dir, 'worker.key'), '--tls-ca', path.join(dir, 'ca.crt'));
  return spawn(process.execPath, [...args, fixture('calculator.js')], { env: cleanEnv(), stdio: ['ignore', 'ignore', 'inherit'] });
}

const exited = (child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));

test('node workers dial in over mTLS, serve a pool, fail in-flight calls at once when killed, rejoin', { timeout: 120000 }, () =>
  withManager({}, async (pm) => {
    const dir = certs();
    const tls = { cert: path.join(dir, 'host.crt'), key: path.join(dir, 'host.key'), ca: path.join(dir, 'ca.crt') };
    const addr = await pm.listen({ address: '127.0.0.1:0', tls, token: 't0ken' });
    const workers = [dial(addr, dir), dial(addr, dir)];
    try {
      const pool = await pm.pool('remote:js', { min: 2, requestTimeout: 30000 });
      assert.equal(await pool.add(2, 3), 5);
      const pids = new Set();
      assert.ok(await eventually(async () => (pids.add(await pool.pid()), pids.size === 2), 30000), 'both workers serve');
      assert.deepEqual([...pids].sort(), workers.map((w) => w.pid).sort());

      const calls = [pool.slow(5000), pool.slow(5000)].map((p) => p.then((v) => ({ v, at: Date.now() }), (e) => ({ e, at: Date.now() })));
      await new Promise((r) => setTimeout(r, 500));
      const killedAt = Date.now();
      workers[0].kill('SIGKILL');
      const outcomes = await Promise.all(calls);
      const crashed = outcomes.filter((o) => o.e);
      assert.equal(crashed.length, 1, 'the killed worker\'s call fails, the other finishes');
      assert.ok(crashed[0].e instanceof ProcessCrashedError, String(crashed[0].e));
      assert.match(crashed[0].e.message, /disconnected/);
      assert.ok(crashed[0].at - killedAt < 2500, `reported ${crashed[0].at - killedAt} ms after the kill`);
      assert.equal(await pool.add(1, 1), 2);

      workers[0] = dial(addr, dir);
      const fresh = workers[0].pid;
      assert.ok(await eventually(async () => (await pool.pid()) === fresh, 30000), 'the restarted worker rejoined');
      await pool.destroy();
    } finally {
      for (const w of workers) w.kill('SIGKILL');
    }
  }));

test('listen refuses plain tcp beyond loopback and unknown options; attach takes a worker that joined', { timeout: 90000 }, () =>
  withManager({}, async (pm) => {
    await assert.rejects(pm.listen({ address: '0.0.0.0:0', token: 'x' }), (e) => e instanceof ConfigError && /only on loopback/.test(e.message));
    await assert.rejects(pm.listen({ address: '127.0.0.1:0' }), /a token is required/);
    await assert.rejects(pm.listen({ address: '127.0.0.1:0', token: 'x', tsl: {} }), /tsl: unknown option/);

    const addr = await pm.listen({ address: '127.0.0.1:0', token: 't0ken' });
    const env = cleanEnv({ TITAN_PM_CONNECT: addr, TITAN_PM_NAME: 'solo', TITAN_PM_TOKEN: 't0ken' });
    const w = spawn(process.execPath, [BIN, fixture('calculator.js')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    try {
      const one = await pm.attach('remote:solo');
      assert.equal(await one.add(20, 22), 42);
    } finally {
      w.kill('SIGKILL');
    }
  }));

test('a node worker drains its in-flight call on SIGTERM, runs its shutdown hooks and exits 0', { timeout: 90000 }, () =>
  withManager({}, async (pm) => {
    const addr = await pm.listen({ address: '127.0.0.1:0', token: 't0ken' });
    const env = cleanEnv({ TITAN_PM_CONNECT: addr, TITAN_PM_NAME: 'solo', TITAN_PM_TOKEN: 't0ken' });
    const w = spawn(process.execPath, [BIN, fixture('calculator.js')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const shutdownFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'titan-drain-')), 'hooks');
    try {
      const one = await pm.attach('remote:solo', { dependencies: { config: { shutdownFile } } });
      assert.equal(await one.increment(), 1);
      const slow = one.withOptions({ timeout: 20000 }).slow(1500);
      await new Promise((r) => setTimeout(r, 300));
      w.kill('SIGTERM');
      assert.equal(await slow, 'done', 'the in-flight call was drained');
      const code = await Promise.race([exited(w), new Promise((r) => setTimeout(() => r('still running after 20 s'), 20000))]);
      assert.equal(code, 0);
      assert.equal(fs.readFileSync(shutdownFile, 'utf8'), 'cleaned up after 1', 'the shutdown hook ran');
    } finally {
      w.kill('SIGKILL');
    }
  }));
