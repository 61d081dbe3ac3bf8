#!/usr/bin/env node
// Builds the native addon from source with `napi build` (release) and compiles
// the TypeScript. The package's install script: a fresh machine needs Node 20
// and cargo, nothing else (no prebuilt download, no capnp compiler).
//
// The crate comes from native/src (vendored into a packed tarball by
// prepack.js) or, in a repository checkout, from ../bindings/node.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');

const root = path.join(__dirname, '..');
const vendored = path.join(root, 'native', 'src', 'bindings', 'node', 'Cargo.toml');
const repo = path.join(root, '..', 'bindings', 'node', 'Cargo.toml');

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

/** `npm install ./node` links the folder without installing its dependencies: install them here. */
function ensureBuildTools() {
  const needTypeScript = fs.existsSync(path.join(root, 'tsconfig.json'));
  if (resolvable('@napi-rs/cli/package.json') && (!needTypeScript || resolvable('typescript/bin/tsc'))) return;
  console.error('titan-pm: installing the build tools (@napi-rs/cli, typescript) in', root);
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^npm_config_(global|prefix|location|only|production|omit)$/i.test(k)) delete env[k];
  const npm = env.npm_execpath && fs.existsSync(env.npm_execpath) ? [process.execPath, [env.npm_execpath]] : ['npm', []];
  run(npm[0], [...npm[1], 'install', '--include=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], env);
}

function buildNative() {
  const manifest = fs.existsSync(vendored) ? vendored : fs.existsSync(repo) ? repo : null;
  if (!manifest) fail('cannot find the bindings/node crate to build the native addon');
  const env = { ...process.env };
  const cargoBin = path.join(os.homedir(), '.cargo', 'bin');
  if (fs.existsSync(cargoBin)) env.PATH = `${env.PATH}${path.delimiter}${cargoBin}`;
  if (spawnSync('cargo', ['--version'], { env }).status !== 0) {
    fail('building the native addon needs cargo (install Rust from https://rustup.rs)');
  }
  if (!env.CARGO_TARGET_DIR && manifest === vendored) env.CARGO_TARGET_DIR = path.join(root, 'native', 'target');
  const cliPkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
  const cli = path.join(path.dirname(cliPkg), require(cliPkg).bin.napi);
  run(process.execPath, [cli, 'build', '--platform', '--release', '--manifest-path', manifest,
    '--package-json-path', path.join(root, 'package.json'), '--output-dir', path.join(root, 'native'),
    '--js', 'binding.js', '--dts', 'binding.d.ts'], env);
}

function compileTypeScript() {
  if (!fs.existsSync(path.join(root, 'tsconfig.json'))) return; // a packed tarball ships dist/, not the sources
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    if (fs.existsSync(path.join(root, 'dist', 'index.js'))) return; // a packed tarball ships dist/
    fail('dist/ is missing and typescript is not installed to compile it (npm install in node/ first)');
  }
  run(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')]);
}

ensureBuildTools();
buildNative();
compileTypeScript();
