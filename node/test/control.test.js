// A Node host serves the control socket: the `titan-pm` CLI (built by
// scripts/test-node.sh's `cargo build --workspace`) lists its workers and calls
// one, `titan-pm stop` shuts the manager down, and the host sees it.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const { fixture, withManager } = require('./helpers');
const { ProcessManager, ConfigError } = require('titan-pm');

const repo = path.join(__dirname, '..', '..');
const cliExe = path.join(process.env.CARGO_TARGET_DIR || path.join(repo, 'target'), 'debug', 'titan-pm');

/** Runs the CLI without blocking this thread: the host must keep answering meanwhile. */
async function cli(sock, ...args) {
  assert.ok(fs.existsSync(cliExe), `${cliExe} is missing: cargo build --workspace first`);
  const { stdout } = await promisify(execFile)(cliExe, ['--socket', sock, ...args], { timeout: 30000 });
  return stdout;
}

function socketIn(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'titan-pm-control-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'ctl', 'control.sock');
}

test('the titan-pm CLI lists and calls the workers of a Node host, and stops it', { timeout: 60000 }, async (t) => {
  const sock = socketIn(t);
  const pm = new ProcessManager({ output: 'ignore' });
  t.after(() => pm.shutdown());
  await pm.spawn(fixture('calculator.js'), { name: 'calc' });
  const server = pm.serveControl(sock);
  t.after(() => server.close());
  assert.equal(server.path, sock);
  const listing = JSON.parse(await cli(sock, '--json', 'ls'));
  assert.deepEqual(listing.map((p) => p.name), ['calc']);
  assert.equal(JSON.parse(await cli(sock, 'call', 'calc', 'add', '5', '3')), 8);
  assert.equal(server.isShutdownRequested(), false);
  await cli(sock, 'stop');
  await server.shutdownRequested();
  assert.equal(server.isShutdownRequested(), true);
});

test('a second server on the same socket is a ConfigError', { timeout: 30000 }, (t) =>
  withManager({}, async (pm) => {
    const sock = socketIn(t);
    const server = pm.serveControl(sock);
    try {
      assert.throws(() => pm.serveControl(sock), (e) => e instanceof ConfigError && /already serves/.test(e.message));
    } finally {
      server.close();
    }
  }),
);

test('titan-pm logs shows the lines a worker thread wrote, with output ignore too', { timeout: 60000 }, async (t) => {
  const sock = socketIn(t);
  const pm = new ProcessManager({ output: 'ignore' });
  t.after(() => pm.shutdown());
  const calc = await pm.spawn(fixture('calculator.js'), { name: 'threaded', isolation: 'worker' });
  const server = pm.serveControl(sock);
  t.after(() => server.close());
  await calc.log('hello from a thread');
  let lines = [];
  const until = Date.now() + 20000;
  while (Date.now() < until) {
    lines = (await cli(sock, 'logs', 'threaded', '--json')).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    if (lines.length >= 2) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // stdout and stderr are two streams: their relative order is not kept.
  const seen = lines.map((l) => [l.name, l.stream, l.line]).sort((a, b) => a[1].localeCompare(b[1]));
  assert.deepEqual(seen, [['threaded', 'stderr', 'err: hello from a thread'], ['threaded', 'stdout', 'hello from a thread']]);
  assert.equal(lines[0].pid, process.pid, 'a worker thread is in the host process');
});
