// The README's quick start runs as written: examples/node-quickstart compiled
// with tsc's standard decorators and with experimentalDecorators
// (scripts/demo-node.sh installs it, compiles it both ways and runs each host).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

test('examples/node-quickstart runs under both decorator modes', { timeout: 600000 }, () => {
  const demo = path.join(__dirname, '..', '..', 'scripts', 'demo-node.sh');
  const r = spawnSync('bash', [demo], { encoding: 'utf8', timeout: 590000 });
  assert.equal(r.status, 0, `${r.error ?? ''}${r.stdout}\n${r.stderr}`);
  for (const mode of ['standard decorators', 'experimentalDecorators']) {
    const section = r.stdout.split(`=== node quick start (${mode})`)[1]?.split('===')[0] ?? '';
    assert.match(section, /add\(5, 3\) = 8/, r.stdout);
    assert.match(section, /divide\(1, 0\) raised RangeError: division by zero/);
    assert.match(section, /in a child process: divide\(10, 3\) = 3\.3/);
    assert.match(section, /calculator: shutting down after 3 calls/);
  }
});
