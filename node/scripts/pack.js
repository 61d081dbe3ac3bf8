#!/usr/bin/env node
// Packs the npm release tarballs into the folder given as argv[2], after
// `napi build --platform --target <triple>` and `tsc` (scripts/build-npm.sh):
//
// - titan-pm-<version>.tgz: dist/ (JS and .d.ts) and the napi loader
//   (native/binding.js, binding.d.ts), nothing else. Its package.json gains
//   `optionalDependencies` naming one platform package per `napi.targets`
//   entry at this version (what `napi pre-publish` adds at publish time; the
//   checkout's package.json has none, as no lock file could resolve them
//   before they are published), so npm fetches the one matching the machine.
// - titan-pm-<platform>-<version>.tgz for each platform package whose addon
//   was built (npm/<platform>/ holding <binaryName>.<platform>.node).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseTriple } = require('@napi-rs/cli');

const root = path.join(__dirname, '..');
const dest = path.resolve(process.argv[2] ?? '.');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const npm = process.env.npm_execpath && fs.existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];

function fail(message) {
  console.error(`pack: ${message}`);
  process.exit(1);
}

function pack(dir) {
  const r = spawnSync(npm[0], [...npm.slice(1), 'pack', '--ignore-scripts', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) fail(`npm pack in ${dir} failed:\n${r.stdout}${r.stderr}`);
  const [info] = JSON.parse(r.stdout);
  console.log(`${info.filename}: ${info.entryCount} files, ${(info.size / 1024).toFixed(0)} kB packed`);
  return info;
}

fs.mkdirSync(dest, { recursive: true });
for (const f of ['dist/index.js', 'dist/index.d.ts', 'native/binding.js', 'native/binding.d.ts']) {
  if (!fs.existsSync(path.join(root, f))) fail(`${f} is missing: build first (scripts/build-npm.sh)`);
}

const platforms = (pkg.napi?.targets ?? []).map((t) => parseTriple(t).platformArchABI);
if (platforms.length === 0) fail('package.json names no napi.targets');
let built = 0;
for (const platform of platforms) {
  const dir = path.join(root, 'npm', platform);
  const sub = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (sub.name !== `${pkg.name}-${platform}`) fail(`npm/${platform}/package.json is named ${sub.name}, not ${pkg.name}-${platform}`);
  if (sub.version !== pkg.version) fail(`npm/${platform}/package.json has version ${sub.version}, not ${pkg.version}`);
  if (!fs.existsSync(path.join(dir, sub.main))) {
    console.log(`${sub.name}: not built on this machine (no ${sub.main}), not packed`);
    continue;
  }
  pack(dir);
  built++;
}
if (built === 0) fail('no platform package is built');

// The main package, staged with its optionalDependencies.
const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'titan-pm-pack-'));
try {
  const staged = { ...pkg, optionalDependencies: Object.fromEntries(platforms.map((p) => [`${pkg.name}-${p}`, pkg.version])) };
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`);
  for (const f of [...pkg.files, 'README.md']) {
    if (fs.existsSync(path.join(root, f))) fs.cpSync(path.join(root, f), path.join(stage, f), { recursive: true });
  }
  const info = pack(stage);
  const bad = info.files.map((f) => f.path).filter((p) => !/^(dist\/|native\/binding\.(js|d\.ts)$|package\.json$|README\.md$)/.test(p));
  if (bad.length) fail(`the main package would ship ${bad.join(', ')}`);
} finally {
  fs.rmSync(stage, { recursive: true, force: true });
}
