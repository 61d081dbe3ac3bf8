// The npm packages as a user gets them (the napi-rs layout): the main package
// holds JS, types and the loader only and names one platform package per
// target in optionalDependencies; the platform package holds the addon. Packs
// both with scripts/pack.js (from the addon scripts/test-node.sh built), then
// installs the two tarballs into a fresh project, offline, and spawns a worker
// in a thread and in a child from it. Nothing compiles: no install script runs.
// (scripts/test-install.sh does the same from the release build.)
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseTriple } = require('@napi-rs/cli');

const root = path.join(__dirname, '..');
const pkg = require('../package.json');
const npm = process.env.npm_execpath && fs.existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];
const here = parseTriple(
  { x64: 'x86_64', arm64: 'aarch64' }[process.arch] + '-unknown-linux-gnu',
).platformArchABI;

function run(cwd, cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300000, env: { ...env, npm_config_loglevel: 'error' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} in ${cwd} failed:\n${r.error ?? ''}${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('the main package has no install script and @napi-rs/cli is a dev dependency', () => {
  const lifecycle = Object.keys(pkg.scripts ?? {}).filter((s) => /^(pre|post)?install$|^prepare$/.test(s));
  assert.deepEqual(lifecycle, [], 'npm runs these in a user\'s install (npm 11 warns, pnpm skips them)');
  assert.equal(pkg.dependencies?.['@napi-rs/cli'], undefined);
  assert.ok(pkg.devDependencies['@napi-rs/cli']);
  assert.deepEqual(pkg.files, ['dist', 'native/binding.js', 'native/binding.d.ts']);
});

test('each napi target has its platform package, named and versioned as napi-rs loads it', () => {
  assert.ok(pkg.napi.targets.length > 0);
  for (const triple of pkg.napi.targets) {
    const { platformArchABI, platform, arch, abi } = parseTriple(triple);
    const sub = require(`../npm/${platformArchABI}/package.json`);
    assert.equal(sub.name, `${pkg.name}-${platformArchABI}`);
    assert.equal(sub.version, pkg.version);
    assert.equal(sub.main, `${pkg.napi.binaryName}.${platformArchABI}.node`);
    assert.deepEqual(sub.files, [sub.main]);
    assert.deepEqual(sub.os, [platform]);
    assert.deepEqual(sub.cpu, [arch]);
    if (abi === 'gnu') assert.deepEqual(sub.libc, ['glibc']);
    // The napi loader requires exactly this package name on this platform.
    assert.match(fs.readFileSync(path.join(root, 'native', 'binding.js'), 'utf8'), new RegExp(`require\\('${sub.name}'\\)`));
  }
});

test('the packed tarballs install offline into a fresh project and work', { timeout: 600000 }, (t) => {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'titan-pm-packaging-'));
  t.after(() => fs.rmSync(stage, { recursive: true, force: true }));
  // The addon scripts/test-node.sh built, in a copy of the platform package.
  const addon = path.join(root, 'native', `${pkg.napi.binaryName}.${here}.node`);
  assert.ok(fs.existsSync(addon), `${addon} is missing: run scripts/test-node.sh (or npm run build) first`);
  const platformDir = path.join(root, 'npm', here);
  const copied = path.join(platformDir, path.basename(addon));
  const hadAddon = fs.existsSync(copied);
  if (!hadAddon) {
    fs.copyFileSync(addon, copied);
    t.after(() => fs.rmSync(copied, { force: true }));
  }
  const packed = run(root, process.execPath, [path.join(root, 'scripts', 'pack.js'), path.join(stage, 'tgz')]);
  const tarballs = fs.readdirSync(path.join(stage, 'tgz')).map((f) => path.join(stage, 'tgz', f));
  assert.equal(tarballs.length, 2, packed);

  const app = path.join(stage, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  // No cargo on PATH: nothing may compile.
  const PATH = process.env.PATH.split(path.delimiter).filter((p) => !p.includes('.cargo')).join(path.delimiter);
  run(app, npm[0], [...npm.slice(1), 'install', '--offline', '--no-audit', '--no-fund', ...tarballs], { ...process.env, PATH });
  const installed = path.join(app, 'node_modules', 'titan-pm');
  assert.ok(fs.existsSync(path.join(installed, 'dist', 'index.d.ts')), 'the .d.ts files are installed');
  assert.ok(!fs.existsSync(path.join(installed, 'native', path.basename(addon))), 'the main package holds no addon');
  assert.ok(fs.existsSync(path.join(app, 'node_modules', `${pkg.name}-${here}`, path.basename(addon))));
  assert.deepEqual(require(path.join(installed, 'package.json')).optionalDependencies, Object.fromEntries(
    pkg.napi.targets.map((t) => [`${pkg.name}-${parseTriple(t).platformArchABI}`, pkg.version]),
  ));

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
  assert.equal(run(app, process.execPath, ['main.mjs'], { ...process.env, PATH }).trim(), 'thread child');
});
