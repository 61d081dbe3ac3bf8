// The `titan-pm` command of the npm package (package.json `bin`, dist/cli.js): npm
// links it into node_modules/.bin on install; it lists a Node host's workers, and
// it starts a daemon from a process file (a new node process in its own session,
// not a fork of this one) that `ls` sees and `stop` ends, leaving no process behind.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const { fixture, eventually } = require('./helpers');
const { ProcessManager } = require('titan-pm');

const root = path.join(__dirname, '..');

function tempDir(t, prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Installs this package into a fresh project (offline, a link) and returns its node_modules/.bin/titan-pm. */
function install(t) {
  const app = tempDir(t, 'titan-pm-bin-');
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "private": true }\n');
  const npm = process.env.npm_execpath && fs.existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const r = spawnSync(npm[0], [...npm.slice(1), 'install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', '--install-links=false', root], { cwd: app, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `npm install failed: ${r.stdout}${r.stderr}`);
  const bin = path.join(app, 'node_modules', '.bin', 'titan-pm');
  assert.ok(fs.existsSync(bin), 'npm linked no titan-pm command');
  return bin;
}

async function cli(bin, sock, ...args) {
  const { stdout } = await promisify(execFile)(bin, ['--socket', sock, ...args], { timeout: 60000 });
  return stdout;
}

function alive(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim()[0] !== 'Z';
  } catch {
    return false;
  }
}

test('package.json names the titan-pm command, a node script', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const file = path.join(root, pkg.bin['titan-pm']);
  assert.match(fs.readFileSync(file, 'utf8').split('\n')[0], /^#!\/usr\/bin\/env node$/);
  assert.ok(pkg.files.some((f) => pkg.bin['titan-pm'].startsWith(`${f}/`)), 'the bin ships in the package');
});

test('the installed command lists and calls the workers of a Node host', { timeout: 120000 }, async (t) => {
  const bin = install(t);
  assert.match(await promisify(execFile)(bin, ['--version']).then((r) => r.stdout), /^titan-pm \d/);
  const sock = path.join(tempDir(t, 'titan-pm-ctl-'), 'ctl', 'control.sock');
  const pm = new ProcessManager({ output: 'ignore' });
  t.after(() => pm.shutdown());
  await pm.spawn(fixture('calculator.js'), { name: 'calc', isolation: 'child' });
  const server = pm.serveControl(sock);
  t.after(() => server.close());
  const listing = JSON.parse(await cli(bin, sock, 'ls', '--json'));
  assert.deepEqual(listing.map((p) => [p.name, p.state]), [['calc', 'running']]);
  assert.equal(JSON.parse(await cli(bin, sock, 'call', 'calc', 'add', '5', '3')), 8);
});

test('start runs a process file as a daemon; ls sees it; stop leaves no process', { timeout: 180000 }, async (t) => {
  const bin = install(t);
  const dir = tempDir(t, 'titan-pm-daemon-');
  const runDir = path.join(dir, 'run');
  const sock = path.join(runDir, 'control.sock');
  const pidFile = path.join(runDir, 'titan-pm.pid');
  const calc = fixture('calculator.js');
  fs.writeFileSync(
    path.join(dir, 'titan.toml'),
    `[manager]\nresources = { timeout = 20000 }\n\n[[process]]\nname = "calc"\nscript = "${calc}"\n\n[[pool]]\nname = "pool"\nscript = "${calc}"\nsize = 2\n`,
  );
  let daemon;
  t.after(() => {
    if (daemon && alive(daemon)) process.kill(daemon, 'SIGKILL');
  });
  // PATH without node: the daemon runs .js workers with the node that runs the command.
  const env = { ...process.env, PATH: '/nonexistent' };
  const started = spawnSync(process.execPath, [bin, '--socket', sock, 'start', path.join(dir, 'titan.toml')], { encoding: 'utf8', env, timeout: 120000 });
  const log = () => (fs.existsSync(path.join(runDir, 'titan-pm.log')) ? fs.readFileSync(path.join(runDir, 'titan-pm.log'), 'utf8') : '');
  assert.equal(started.status, 0, `start failed: ${started.stdout}${started.stderr}\nlog: ${log()}`);
  assert.match(started.stdout, /started: calc, pool/);
  daemon = Number(fs.readFileSync(pidFile, 'utf8').trim());
  assert.ok(alive(daemon));
  const stat = fs.readFileSync(`/proc/${daemon}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
  assert.equal(Number(stat[3]), daemon, 'the daemon leads a session of its own');
  const argv = fs.readFileSync(`/proc/${daemon}/cmdline`, 'utf8').split('\0');
  assert.equal(argv[0], process.execPath);
  assert.ok(argv.includes('--no-daemon'), argv.join(' '));

  const listing = JSON.parse(await cli(bin, sock, 'ls', '--json'));
  assert.deepEqual(listing.map((p) => p.name).sort(), ['calc', 'pool', 'pool']);
  assert.ok(listing.every((p) => p.state === 'running'), JSON.stringify(listing));
  assert.equal(JSON.parse(await cli(bin, sock, 'call', 'pool', 'add', '2', '3')), 5);
  const workers = listing.map((p) => p.pid);

  assert.match(await cli(bin, sock, 'stop'), /manager stopped/);
  assert.ok(await eventually(() => !alive(daemon) && workers.every((p) => !alive(p)), 30000), "every process exits");
  assert.ok(!fs.existsSync(sock) && !fs.existsSync(pidFile));
});
