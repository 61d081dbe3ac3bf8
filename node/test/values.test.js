// Values as the brief maps them, and values that cannot be sent: a
// SerializationError naming the path, raised before anything is sent.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { ISOLATIONS, fixture, withManager } = require('./helpers');
const { ProcessCrashedError, SerializationError, TitanError } = require('titan-pm');
const v8 = require('node:v8');
const vm = require('node:vm');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** Collects garbage a few times, with turns of the event loop between (finalizers run). */
async function collect() {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

for (const isolation of ISOLATIONS) {
  test(`values survive the round trip (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const echo = (v) => calc.echo(v);
      assert.equal(await echo(null), null);
      assert.equal(await echo(undefined), null);
      assert.equal(await echo(true), true);
      assert.equal(await echo(42), 42);
      assert.equal(await echo(-0.5), -0.5);
      assert.equal(await echo(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
      assert.equal(await echo(12n), 12, 'a bigint in the safe range comes back as a number');
      assert.equal(await echo(2n ** 62n), 2n ** 62n, 'an int outside the safe range arrives as a bigint');
      assert.ok(Number.isNaN(await echo(NaN)));
      assert.equal(await echo('héllo'), 'héllo');
      assert.deepEqual(await echo(Buffer.from([0, 1, 255])), Buffer.from([0, 1, 255]));
      assert.deepEqual(await echo(new Uint8Array([7, 8])), Buffer.from([7, 8]));
      // Large data travels into its Buffer without a copy (convert.rs): whole, in place, separate.
      const big = Buffer.alloc(1 << 20);
      for (let i = 0; i < big.length; i += 4093) big[i] = i & 255;
      const back = await echo({ one: big, list: [big, 'x'] });
      assert.ok(Buffer.isBuffer(back.one) && back.one.equals(big) && back.list[0].equals(big));
      back.one[0] = 99;
      assert.equal(back.list[0][0], 0, 'each Buffer owns its bytes');
      assert.deepEqual(await echo(Buffer.alloc(0)), Buffer.alloc(0));
      assert.deepEqual(await echo({ a: [1, { b: 'c' }], d: { e: null } }), { a: [1, { b: 'c' }], d: { e: null } });
      assert.deepEqual(await echo(new Map([['k', 1]])), { k: 1 });
      class Point {
        constructor() {
          this.x = 1;
          this.y = 2;
        }
      }
      assert.deepEqual(await echo(new Point()), { x: 1, y: 2 }, 'a data-only class instance travels as a map');
    }),
  );

  test(`large Buffers arrive whole and stay intact after GC pressure and a killed worker (${isolation})`, { timeout: 60000 }, () =>
    withManager({ isolation, restartPolicy: { initialBackoff: 10 } }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      // Over SHARE_DATA_BYTES: what comes back is a Buffer over the value's own bytes.
      const sent = Buffer.alloc(3 << 19);
      for (let i = 0, x = 16; i < sent.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        sent[i] = x >>> 24;
      }
      const expected = Buffer.from(sent);
      const back = await calc.echo(sent);
      const [a, b] = await calc.echo([sent, new Uint8Array(sent)]);
      assert.ok(sent.equals(expected), "the caller's Buffer is unchanged");
      // Pressure: more large results and plain Buffers, made and dropped.
      for (let i = 0; i < 6; i++) {
        const junk = [await calc.echo(Buffer.alloc(1 << 20, i)), Buffer.alloc(4 << 20, i)];
        assert.equal(junk[0][1 << 19], i);
      }
      await collect();
      for (const got of [back, a, b]) assert.ok(Buffer.isBuffer(got) && got.equals(expected));
      const err = await calc.crash(7).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessCrashedError, String(err));
      await collect();
      for (const got of [sent, back, a, b]) assert.ok(got.equals(expected));
      assert.ok((await calc.echo(sent)).equals(expected), 'the restarted worker gets the same bytes');
      sent.fill(0);
      assert.ok(back.equals(expected) && a.equals(expected), 'results do not share the argument');
    }),
  );

  test(`unsupported values are a SerializationError naming the path (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      class WithMethods {
        area() {
          return 1;
        }
      }
      const cases = [
        [[1, { items: [0, 1, 2, () => 3] }], 'args[1]["items"][3]', /function/],
        [[Symbol('s')], 'args[0]', /symbol/],
        [[{ shape: new WithMethods() }], 'args[0]["shape"]', /WithMethods instance/],
        [[new Map([[1, 'one']])], 'args[0]', /Map key is not a string/],
        [[2n ** 64n], 'args[0]', /bigint out of the int64 range/],
        [[new Float64Array(2)], 'args[0]', /Float64Array/],
        // Refused with how to convert them (a Map with string keys travels as an object, above).
        [[{ at: new Date(0) }], 'args[0]["at"]', /a Date cannot be sent: send date\.toISOString\(\) \(or date\.getTime\(\)\)/],
        [[[new Set([1])]], 'args[0][0]', /a Set cannot be sent: send \[\.\.\.set\] \(an array\)/],
      ];
      for (const [args, path, message] of cases) {
        const err = await calc.echo(...args).then(() => null, (e) => e);
        assert.ok(err instanceof SerializationError && err instanceof TitanError, `${path}: ${err}`);
        assert.equal(err.path, path);
        assert.match(err.message, message);
      }
      const metrics = await pm.getMetrics(calc);
      assert.equal(metrics.requests, 0, 'nothing was sent');
    }),
  );

  test(`a result the worker cannot send fails that call and the worker keeps serving (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const err = await calc.unsendable().then(() => null, (e) => e);
      assert.ok(err instanceof SerializationError, String(err));
      assert.equal(err.path, 'result["ok"][2]');
      assert.equal(await calc.add(1, 2), 3);
    }),
  );
}
