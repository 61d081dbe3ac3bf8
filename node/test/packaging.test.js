// Installing the package as a user would: `npm install <folder>` and `npm
// install` of a packed tarball, each into a fresh project, from a copy of the
// sources made here (no node_modules, no dist/, no addon). Each build compiles
// the addon with cargo; CARGO_TARGET_DIR is shared, so dependencies are cached.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const repo = path.join(__dirname, '..', '..');
const stage = path.join(os.tmpdir(), 'titan-pm-packaging-test');
const npm = process.env.npm_execpath && fs.existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];

function run(cwd, cmd, ...args) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 600000, env: { ...process.env, npm_config_loglevel: 'error' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} in ${cwd} failed:\n${r.error ?? ''}${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
const runNpm = (cwd, ...args) => run(cwd, npm[0], ...npm.slice(1), ...args, '--no-audit', '--no-fund');

/** A fresh project that installs `spec` and spawns a worker in a thread and in a child. */
function tryInstall(name, spec) {
  const app = path.join(stage, name);
  fs.mkdirSync(app, { recursive: true });
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name, private: true }));
  runNpm(app, 'install', spec);
  fs.writeFileSync(
    path.join(app, 'echo.js'),
    `const { Process, Public } = require('titan-pm');
     class Echo { ping(x) { return x; } }
     Public()(Echo.prototype.ping, { kind: 'method', name: 'ping' });
     Process({ name: 'echo' })(Echo, { kind: 'class', name: 'Echo' });
     module.exports = Echo;`,
  );
  fs.writeFileSync(
    path.join(app, 'main.mjs'),
    `import { ProcessManager } from 'titan-pm';
     const pm = new ProcessManager({ output: 'ignore' });
     const file = new URL('./echo.js', import.meta.url).pathname;
     const thread = await pm.spawn(file);
     const child = await pm.spawn(file, { isolation: 'child' });
     console.log(await thread.ping('thread'), await child.ping('child'));
     await pm.shutdown();`,
  );
  assert.ok(fs.existsSync(path.join(app, 'node_modules', 'titan-pm', 'dist', 'index.d.ts')), 'the .d.ts files are installed');
  return run(app, process.execPath, 'main.mjs').trim();
}

test('npm install of the folder and of a packed tarball build the addon and work', { timeout: 1200000 }, () => {
  fs.rmSync(stage, { recursive: true, force: true });
  const src = path.join(stage, 'src');
  for (const f of ['Cargo.lock', 'core', 'bindings/node']) fs.cpSync(path.join(repo, f), path.join(src, f), { recursive: true });
  const manifest = fs.readFileSync(path.join(repo, 'Cargo.toml'), 'utf8').replace(/^members = .*$/m, 'members = ["core", "bindings/node"]');
  fs.writeFileSync(path.join(src, 'Cargo.toml'), manifest);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'scripts']) {
    fs.cpSync(path.join(repo, 'node', f), path.join(src, 'node', f), { recursive: true });
  }

  assert.equal(tryInstall('from-folder', path.join(src, 'node')), 'thread child');

  const tarball = runNpm(path.join(src, 'node'), 'pack', '--pack-destination', stage).trim().split('\n').pop();
  assert.equal(tryInstall('from-tarball', path.join(stage, tarball)), 'thread child');
  fs.rmSync(stage, { recursive: true, force: true });
});
