#!/usr/bin/env node
// Builds the package from source in a repository checkout (`npm run build`,
// scripts/test-node.sh): the native addon with `napi build --platform`
// (release, the crate ../bindings/node) into native/, next to the napi loader
// that prefers it to a platform package, and the TypeScript into dist/. Needs
// Node 20 and cargo, nothing else (no capnp compiler). Not an install script:
// users get the prebuilt addon from the platform package
// (scripts/build-npm.sh packs both).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');

const root = path.join(__dirname, '..');
const manifest = path.join(root, '..', 'bindings', 'node', 'Cargo.toml');

function fail(message) {
  console.error(`titan-pm: ${message}`);
  process.exit(1);
}

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env });
  if (r.error) fail(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${[cmd, ...args].map((a) => path.basename(a)).slice(0, 3).join(' ')} failed (exit ${r.status})`);
}

function resolvable(id) {
  try {
    require.resolve(id, { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

/** The build tools are dev dependencies: install them when missing (e.g. `npm install --omit=dev`). */
function ensureBuildTools() {
  if (resolvable('@napi-rs/cli/package.json') && resolvable('typescript/bin/tsc')) return;
  console.error('titan-pm: installing the build tools (@napi-rs/cli, typescript) in', root);
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^npm_config_(global|prefix|location|only|production|omit)$/i.test(k)) delete env[k];
  const npm = env.npm_execpath && fs.existsSync(env.npm_execpath) ? [process.execPath, [env.npm_execpath]] : ['npm', []];
  run(npm[0], [...npm[1], 'install', '--include=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], env);
}

function buildNative() {
  if (!fs.existsSync(manifest)) fail('cannot find the bindings/node crate (../bindings/node): build from a repository checkout');
  const env = { ...process.env };
  const cargoBin = path.join(os.homedir(), '.cargo', 'bin');
  if (fs.existsSync(cargoBin)) env.PATH = `${env.PATH}${path.delimiter}${cargoBin}`;
  if (spawnSync('cargo', ['--version'], { env }).status !== 0) {
    fail('building the native addon needs cargo (install Rust from https://rustup.rs)');
  }
  const cliPkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
  const cli = path.join(path.dirname(cliPkg), require(cliPkg).bin.napi);
  run(process.execPath, [cli, 'build', '--platform', '--release', '--manifest-path', manifest,
    '--package-json-path', path.join(root, 'package.json'), '--output-dir', path.join(root, 'native'),
    '--js', 'binding.js', '--dts', 'binding.d.ts'], env);
}

function compileTypeScript() {
  run(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', path.join(root, 'tsconfig.json')]);
}

ensureBuildTools();
buildNative();
compileTypeScript();
