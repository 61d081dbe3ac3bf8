// Across languages: a Node host drives the Rust example worker and a Python
// worker, a Python host drives a Node worker, and one trace runs from a Python
// host through a Rust worker to a Node and a Python worker, and another through
// a Node worker to a Rust and a Python worker. scripts/test-node.sh
// builds the workspace and the Python package (in the repository's .venv) first.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { fixture, withManager } = require('./helpers');
const { RemoteError } = require('titan-pm');

const repo = path.join(__dirname, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
const rustCalculator = path.join(targetDir, 'debug', 'rust-calculator');
const python = process.env.TITAN_TEST_PYTHON || path.join(repo, '.venv', 'bin', 'python');
const noPython = fs.existsSync(path.join(repo, 'python')) ? false : 'the Python package is not in this checkout';

test('a Node host calls the Rust example worker', { timeout: 30000 }, () =>
  withManager({ isolation: 'child' }, async (pm) => {
    assert.ok(fs.existsSync(rustCalculator), `${rustCalculator} is missing: cargo build --workspace first`);
    const calc = await pm.spawn(rustCalculator);
    assert.equal(await calc.add(5, 3), 8);
    assert.equal(await calc.multiply(1.5, 4), 6);
    const err = await calc.raise('from rust').then(() => null, (e) => e);
    assert.ok(err instanceof RemoteError && err.remoteType === 'ValueError', String(err));
    assert.equal((await pm.getProcess(calc)).name, 'calculator');
  }),
);

test('a Node host calls a Python worker', { timeout: 60000, skip: noPython }, () =>
  withManager({ isolation: 'child', python }, async (pm) => {
    const calc = await pm.spawn(path.join(repo, 'python', 'tests', 'workers', 'calculator.py'), { dependencies: { config: { a: 1 } } });
    assert.equal(await calc.add(2, 40), 42);
    assert.deepEqual(await calc.process_data(['a', 'b']), ['A', 'B']);
    assert.deepEqual(await calc.get_config(), { a: 1 });
    const err = await calc.fail('ValueError', 'from python').then(() => null, (e) => e);
    assert.ok(err instanceof RemoteError && err.remoteType === 'ValueError', String(err));
  }),
);

test('a Python host calls a Node worker', { timeout: 60000, skip: noPython }, () => {
  const script = [
    'import sys',
    'from titan_pm.sync import ProcessManager',
    'with ProcessManager() as pm:',
    '    calc = pm.spawn(sys.argv[1], dependencies={"config": {"unit": "m"}, "label": "py"})',
    '    print(calc.add(5, 3), calc.increment(), calc.increment(), calc.dependencies())',
  ].join('\n');
  const r = spawnSync(python, ['-c', script, fixture('calculator.js')], { encoding: 'utf8', timeout: 50000 });
  assert.equal(r.status, 0, `${r.error ?? ''}${r.stdout}${r.stderr}`);
  assert.equal(r.stdout.trim(), "8 1 2 [{'unit': 'm'}, 'py']");
});

test('one trace from a Python host through a Rust worker to a Node and a Python worker', { timeout: 60000, skip: noPython }, () => {
  // The Rust test worker calls the processes it was given (its Caller capabilities);
  // each leaf returns its own call's trace context (getTraceContext / get_trace_context).
  const testWorker = process.env.TITAN_TEST_RUST_WORKER || path.join(targetDir, 'debug', 'test-worker');
  assert.ok(fs.existsSync(testWorker), `${testWorker} is missing: cargo build --workspace first`);
  const script = [
    'import json, sys',
    'from titan_pm.sync import ProcessManager',
    'with ProcessManager() as pm:',
    '    node = pm.spawn(sys.argv[1])',
    '    py = pm.spawn(sys.argv[2])',
    '    rust = pm.spawn(sys.argv[3], processes={"node": node.process_id, "py": py.process_id})',
    '    print(json.dumps([rust.trace_via("node", "traced"), rust.trace_via("py", "trace")]))',
  ].join('\n');
  const pyWorker = path.join(repo, 'python', 'tests', 'workers', 'traced.py');
  const r = spawnSync(python, ['-c', script, fixture('policies.js'), pyWorker, testWorker], { encoding: 'utf8', timeout: 50000 });
  assert.equal(r.status, 0, `${r.error ?? ''}${r.stdout}${r.stderr}`);
  const [viaNode, viaPy] = JSON.parse(r.stdout);
  for (const [via, leaf] of [
    [viaNode, { traceId: viaNode.theirs.traceId, parent: viaNode.theirs.parentSpanId }],
    [viaPy, { traceId: viaPy.theirs.trace_id, parent: viaPy.theirs.parent_span_id }],
  ]) {
    assert.match(via.mine.traceId, /^[0-9a-f]{32}$/, JSON.stringify(via));
    assert.equal(via.mine.parentSpanId, '', 'the Python host started the trace');
    assert.equal(leaf.traceId, via.mine.traceId, `one trace through all three: ${JSON.stringify(via)}`);
    assert.equal(leaf.parent, via.mine.spanId, `the leaf's span is the Rust worker's child: ${JSON.stringify(via)}`);
  }
  assert.notEqual(viaNode.mine.traceId, viaPy.mine.traceId, 'each host call is a trace of its own');
});

test('one trace from a Python host through a Node worker to a Rust and a Python worker', { timeout: 60000, skip: noPython }, () => {
  // The Node order service (composition.js) calls the processes it was given
  // (@InjectProcess 'rust' and 'users'); each returns its own call's trace context.
  const testWorker = process.env.TITAN_TEST_RUST_WORKER || path.join(targetDir, 'debug', 'test-worker');
  assert.ok(fs.existsSync(testWorker), `${testWorker} is missing: cargo build --workspace first`);
  const script = [
    'import json, sys',
    'from titan_pm.sync import ProcessManager',
    'with ProcessManager() as pm:',
    '    rust = pm.spawn(sys.argv[2])',
    '    users = pm.spawn(sys.argv[3])',
    '    node = pm.spawn(sys.argv[1], processes={"rust": rust.process_id, "users": users.process_id})',
    '    print(json.dumps([node.traced(), node.traced()]))',
  ].join('\n');
  const pyUsers = path.join(repo, 'python', 'tests', 'workers', 'composition.py') + ':UserService';
  const r = spawnSync(python, ['-c', script, fixture('composition.js') + ':OrderService', testWorker, pyUsers], { encoding: 'utf8', timeout: 50000 });
  assert.equal(r.status, 0, `${r.error ?? ''}${r.stdout}${r.stderr}`);
  const [first, second] = JSON.parse(r.stdout);
  for (const t of [first, second]) {
    const all = JSON.stringify(t);
    assert.match(t.here.traceId, /^[0-9a-f]{32}$/, all);
    assert.equal(t.here.parentSpanId, '', 'the Python host started the trace');
    assert.equal(t.rust.traceId, t.here.traceId, `one trace id through Python -> Node -> Rust: ${all}`);
    assert.equal(t.rust.parentSpanId, t.here.spanId, `the Rust span is the Node worker's child: ${all}`);
    assert.equal(t.users.trace_id, t.here.traceId, `one trace id through Python -> Node -> Python: ${all}`);
    assert.equal(t.users.parent_span_id, t.here.spanId, `the Python span is the Node worker's child: ${all}`);
    assert.notEqual(t.rust.spanId, t.users.span_id, 'each call a span of its own');
  }
  assert.notEqual(first.here.traceId, second.here.traceId, 'each host call is a trace of its own');
});
