// Attacks on the Node bridge (issue 9): values that are cyclic, nested past the
// one depth limit, or hold a lone surrogate are a SerializationError naming the
// path, on the side that tried to send them, and nothing crashes (the host used
// to die of a native stack overflow); an output flood while the JS thread is
// busy stays bounded, and what was dropped is counted.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { inspect } = require('node:util');
const { fixture, withManager, eventually } = require('./helpers');
const { ProcessManager, SerializationError } = require('titan-pm');

/** The core's `value::MAX_DEPTH`: a value inside more lists and maps than this is refused. */
const MAX_DEPTH = 100;

/** `depth` arrays nested in one another around `inner`. */
function nestedArrays(depth, inner = 1) {
  let v = inner;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

function nestedObjects(depth) {
  let v = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

async function rejection(promise) {
  return promise.then(
    (v) => assert.fail(`expected a SerializationError, got ${inspect(v, { depth: 3, maxArrayLength: 4, maxStringLength: 40 })}`),
    (e) => e,
  );
}

async function serializationError(promise, path, message) {
  const err = await rejection(promise);
  assert.ok(err instanceof SerializationError, String(err));
  assert.equal(err.path, path);
  assert.match(err.message, message);
  return err;
}

test('a cyclic argument is a SerializationError naming where it contains itself; the host lives on', { timeout: 30000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const calc = await pm.spawn(fixture('calculator.js'));
    const loop = {};
    loop.self = loop;
    await serializationError(calc.echo(1, { x: loop }), 'args[1]["x"]["self"]', /cyclic/);
    const list = [1];
    list.push(list);
    await serializationError(calc.echo(list), 'args[0][1]', /cyclic/);
    const map = new Map();
    map.set('m', map);
    await serializationError(calc.echo(map), 'args[0]["m"]', /cyclic/);
    // Shared (not cyclic) parts are fine: each reference is sent as a copy.
    const shared = { n: 1 };
    assert.deepEqual(await calc.echo([shared, shared]), [{ n: 1 }, { n: 1 }]);
    assert.equal((await pm.getMetrics(calc)).requests, 1, 'nothing was sent for the refused calls');
    assert.equal(await calc.add(1, 2), 3);
  }),
);

test('an argument nested past the limit is a SerializationError naming the first level past it', { timeout: 30000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const calc = await pm.spawn(fixture('calculator.js'));
    const tooDeep = new RegExp(`deeper than ${MAX_DEPTH} levels`);
    // The path names the first value inside more than MAX_DEPTH lists and maps.
    await serializationError(calc.echo(nestedArrays(10000)), `args[0]${'[0]'.repeat(MAX_DEPTH + 1)}`, tooDeep);
    await serializationError(calc.echo(nestedObjects(100000)), `args[0]${'["a"]'.repeat(MAX_DEPTH + 1)}`, tooDeep);
    await serializationError(calc.echo(2, nestedArrays(MAX_DEPTH + 1)), `args[1]${'[0]'.repeat(MAX_DEPTH + 1)}`, tooDeep);
    // The same limit for the spawn dependencies (a map: one level, then the values).
    const deps = { dependencies: { config: nestedArrays(MAX_DEPTH) } };
    const spawned = await rejection(pm.spawn(fixture('calculator.js'), deps));
    assert.ok(spawned instanceof SerializationError, String(spawned));
    assert.equal(spawned.path, `options["dependencies"]["config"]${'[0]'.repeat(MAX_DEPTH)}`);
    await pm.spawn(fixture('calculator.js'), { dependencies: { config: nestedArrays(MAX_DEPTH - 1) } });
    assert.equal(await calc.add(1, 2), 3);
  }),
);

for (const isolation of ['worker', 'none', 'child']) {
  test(`a value exactly at the limit goes through (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const deepest = nestedArrays(MAX_DEPTH);
      assert.deepEqual(await calc.echo(deepest), deepest);
      assert.deepEqual(await calc.echo(nestedObjects(MAX_DEPTH)), nestedObjects(MAX_DEPTH));
      assert.deepEqual(await calc.nested(MAX_DEPTH), nestedArrays(MAX_DEPTH, 'bottom'));
    }),
  );
}

for (const isolation of ['worker', 'none', 'child']) {
  test(`a deep or cyclic result is a SerializationError and the worker keeps serving (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const pid = await calc.pid();
      for (const depth of [MAX_DEPTH + 1, 3000, 100000]) {
        await serializationError(calc.nested(depth), `result${'[0]'.repeat(MAX_DEPTH + 1)}`, /deeper than/);
        assert.equal(await calc.add(1, 2), 3);
      }
      await serializationError(calc.cyclic(), 'result["loop"]["self"]', /cyclic/);
      assert.equal(await calc.add(2, 3), 5);
      assert.equal(await calc.pid(), pid, 'the same worker still serves');
      const [info] = await pm.listProcesses();
      assert.equal(info.restarts, 0);
    }),
  );
}

/** The core's `value::MAX_MESSAGE_BYTES`: the encoded values of one message, at most. */
const MAX_MESSAGE_BYTES = 64 * 2 ** 20;

for (const isolation of ['worker', 'none', 'child']) {
  test(`a value over the message size limit is a SerializationError on the sending side (${isolation})`, { timeout: 120000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const pid = await calc.pid();
      const big = Buffer.alloc(MAX_MESSAGE_BYTES + 1024, 7);
      const sent = await rejection(calc.echo(big));
      assert.ok(sent instanceof SerializationError, String(sent));
      assert.match(sent.message, /over the limit/);
      assert.equal((await pm.getMetrics(calc)).requests, 1, 'the refused call was not sent');
      const returned = await rejection(calc.blob(MAX_MESSAGE_BYTES + 1024));
      assert.ok(returned instanceof SerializationError, String(returned));
      assert.match(returned.message, /over the limit/);
      assert.equal((await calc.blob(1024)).length, 1024);
      assert.equal(await calc.pid(), pid, 'the same worker still serves');
      assert.equal((await pm.listProcesses())[0].restarts, 0);
    }),
  );
}

test('a lone surrogate is a SerializationError naming the path, as an argument and as a result', { timeout: 30000 }, () =>
  withManager({ isolation: 'worker' }, async (pm) => {
    const calc = await pm.spawn(fixture('calculator.js'));
    await serializationError(calc.echo({ s: 'a\uD800b' }), 'args[0]["s"]', /lone surrogate \(\\ud800\) at index 1/);
    await serializationError(calc.echo(['ok', '\uDFFF']), 'args[0][1]', /lone surrogate \(\\udfff\) at index 0/);
    await serializationError(calc.echo({ ['k\uD800']: 1 }), 'args[0]', /a key: a lone surrogate/);
    await serializationError(calc.loneSurrogate(), 'result["s"]', /lone surrogate \(\\udc00\) at index 2/);
    // Well-formed text, pairs and a real U+FFFD are fine.
    for (const s of ['\uD83D\uDE00', '\uFFFD', 'é\uFFFDx']) assert.equal(await calc.echo(s), s);
    assert.equal(await calc.add(1, 2), 3);
  }),
);

/**
 * Floods output from a worker while this thread is busy, then measures: `child`
 * writes to fd 1 (the core reads it and queues lines for the output callback),
 * `worker` uses console.log in a worker thread (Node's worker stdio).
 */
async function flood(isolation, lines, bound) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'titan-flood-'));
  const marker = path.join(dir, 'done');
  const width = 100;
  let delivered = 0;
  let dropped = 0;
  const pm = new ProcessManager({ isolation, output: () => delivered++ });
  pm.on('output:dropped', (e) => (dropped += e.dropped));
  try {
    const calc = await pm.spawn(fixture('calculator.js'));
    const before = process.memoryUsage().rss;
    const flooding = calc.flood(lines, width, marker, isolation !== 'child');
    // Keep this thread busy while the worker writes; then a moment for the rest to be read.
    const until = Date.now() + 60000;
    while (!fs.existsSync(marker) && Date.now() < until) {}
    const settle = Date.now() + 1000;
    while (Date.now() < settle) {}
    const grown = process.memoryUsage().rss - before;
    assert.ok(fs.existsSync(marker), 'the worker finished writing');
    assert.equal(await flooding, lines);
    assert.ok(await eventually(() => dropped > 0, 10000), 'an output:dropped event counted the drops');
    await eventually(() => false, 500); // the rest of the queue arrives
    assert.ok(delivered <= bound, `at most the queue bound and what was still in the pipe: ${delivered}`);
    assert.ok(delivered + dropped <= lines, `${delivered} + ${dropped}`);
    assert.ok(dropped >= lines / 2, `most lines were dropped: ${dropped}`);
    assert.ok(grown < 150 * 2 ** 20, `host memory grew ${(grown / 2 ** 20).toFixed(0)} MB`);
    // Output flows again once the thread is free.
    const seen = delivered;
    await calc.log('after');
    assert.ok(await eventually(() => delivered >= seen + 2), 'later lines are delivered');
  } finally {
    await pm.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('an output flood from a child while the JS thread is busy stays bounded; the drops are counted', { timeout: 120000 }, () =>
  // The native queue holds 10 000 lines; what was still in the pipe may follow.
  flood('child', 400000, 10000 + 2000),
);

test('an output flood from a worker thread while the JS thread is busy stays bounded; the drops are counted', { timeout: 120000 }, () =>
  // A worker thread's stdout holds 4 MiB (about 42 000 lines of 100 bytes).
  flood('worker', 400000, (4 << 20) / 100 + 1000),
);
