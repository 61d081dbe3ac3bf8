#!/usr/bin/env node
// Before `npm pack`: compiles the TypeScript and vendors the Rust sources the
// addon is built from (core/ and bindings/node/ with a workspace of their
// own) into native/src, so the tarball installs on a machine without this
// repository.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const repo = path.join(root, '..');
const out = path.join(root, 'native', 'src');

const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(1);

fs.rmSync(out, { recursive: true, force: true });
const copy = (from, to) => fs.cpSync(path.join(repo, from), path.join(out, to ?? from), { recursive: true });
for (const f of ['core/Cargo.toml', 'core/src', 'bindings/node/Cargo.toml', 'bindings/node/build.rs', 'bindings/node/src', 'Cargo.lock']) {
  copy(f);
}
const manifest = fs.readFileSync(path.join(repo, 'Cargo.toml'), 'utf8')
  .replace(/^members = .*$/m, 'members = ["core", "bindings/node"]');
fs.writeFileSync(path.join(out, 'Cargo.toml'), manifest);
