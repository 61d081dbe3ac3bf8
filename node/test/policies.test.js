// Every method policy declared with the TS decorators, on a real worker compiled
// under both decorator modes: the host-side ones (applied by the core) and the
// worker-side ones (a yup validator as the seed writes it, a cache key function,
// a cache condition: worker/layers.ts), and getTraceContext() inside a method.
// A counter in the worker (`runs(name)`) proves what ran.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MODES, fixture, withManager } = require('./helpers');
const { RateLimitError, ValidationError, RemoteError, Cache, Validate, getTraceContext } = require('titan-pm');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

test('worker-side options are checked when the decorator is applied', () => {
  assert.throws(() => Cache({ ttl: 1000, condition: true }), /@Cache\(\{ condition \}\) must be a function of the result/);
  assert.throws(() => Cache({ ttl: 'soon', key: (x) => x }), /@Cache\(\{ ttl \}\)/);
  assert.throws(() => Validate({ schema: { validate() {} } }), /JSON Schema object or a Standard Schema validator/);
  assert.equal(getTraceContext(), undefined, 'outside a call');
});

for (const mode of MODES) {
  test(`every policy runs on a TS worker (${mode} decorators)`, { timeout: 60000 }, () =>
    withManager({ isolation: 'worker' }, async (pm) => {
      const w = await pm.spawn(fixture('policies.js', mode));

      // @RateLimit: 10 at once, the rest refused with a plausible retryAfter.
      const outcomes = await Promise.allSettled(Array.from({ length: 25 }, () => w.limited()));
      const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
      const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason);
      assert.ok(ok >= 10 && ok <= 11, `${ok} admitted`);
      assert.ok(refused.every((e) => e instanceof RateLimitError && e.retryAfter > 0 && e.retryAfter <= 1000), String(refused[0]));
      assert.equal(await w.runs('limited'), ok);

      // @Validate with a JSON Schema (host) and with the seed's yup schema (worker).
      assert.equal(await w.jsonValidated({ email: 'a@b' }), 'a@b');
      let e = await w.jsonValidated({ email: 'nope' }).catch((x) => x);
      assert.ok(e instanceof ValidationError, String(e));
      assert.deepEqual(e.failures.map((f) => f.path), ['/email']);
      assert.equal(await w.runs('jsonValidated'), 1);
      assert.equal(await w.createUser({ name: 'Ada', email: 'ada@example.com', age: 36 }), 'created Ada');
      e = await w.createUser({ email: 'nope', age: 3 }).catch((x) => x);
      assert.ok(e instanceof ValidationError, String(e));
      assert.deepEqual(e.failures.map((f) => f.path).sort(), ['/age', '/email', '/name']);
      assert.ok(e.failures.every((f) => f.message.length > 0));
      assert.match(e.message, /email must be a valid email/);
      assert.equal(await w.runs('createUser'), 1, 'the method never ran on invalid input');

      // @Cache on the host; with a key function and with a condition in the worker.
      const first = await w.cached(7);
      assert.equal(await w.cached(7), first);
      assert.equal(await w.runs('cached'), 1);
      const p = await w.profile(7, false);
      assert.deepEqual(await w.profile(7, true), p, 'the key function ignores `verbose`: a hit');
      assert.equal((await w.profile(8, false)).run, 2);
      assert.equal((await w.job('pending')).run, 1);
      assert.equal((await w.job('pending')).run, 2, 'condition false: not cached');
      const done = await w.job('done');
      assert.deepEqual(await w.job('done'), done, 'condition true: cached');
      assert.equal(await w.runs('job'), 3);
      await sleep(500);
      assert.notEqual(await w.cached(7), first, 'after the ttl the method runs again');
      assert.equal((await w.profile(7, false)).run, 3, 'after the ttl the key function misses');

      // @CircuitBreaker: two failures open it; the fallback answers without the method; half-open, closed.
      for (let i = 0; i < 2; i++) await assert.rejects(w.guarded(true), RemoteError);
      assert.equal(await w.guarded(false), 'fallback');
      assert.equal(await w.runs('guarded'), 2, 'open: the method did not run');
      await sleep(400);
      assert.equal(await w.guarded(false), 'guarded', 'half-open trial succeeds: closed');
      assert.equal(await w.guarded(false), 'guarded');

      // @Idempotent: concurrent and sequential repeats run once; after the ttl again.
      const req = { transactionId: 't1', amount: 5 };
      const [a, b] = await Promise.all([w.pay(req), w.pay(req)]);
      assert.deepEqual(a, b);
      assert.deepEqual(await w.pay(req), a);
      assert.equal(await w.runs('pay'), 1);
      await sleep(700);
      assert.equal((await w.pay(req)).run, 2);

      // @Metric.
      for (let i = 0; i < 4; i++) await w.add(i, i);
      assert.equal((await pm.getMetrics(w)).methods.add.requests, 4);

      // @Trace and getTraceContext(): the call's W3C context, a span per call.
      const seen = [await w.traced(), await w.traced(), await w.traceAsync()];
      for (const t of seen) {
        assert.ok(HEX32.test(t.traceId) && HEX16.test(t.spanId), JSON.stringify(t));
        assert.equal(t.traceparent, `00-${t.traceId}-${t.spanId}-01`);
        assert.equal(t.parentSpanId, '', 'a host call outside any span starts a trace');
      }
      assert.equal(new Set(seen.map((t) => t.spanId)).size, 3);

      // @SelfHeal: ConnectionError twice within the cooldown -> exactly one restart.
      for (let i = 0; i < 2; i++) await assert.rejects(w.loseConnection(), RemoteError);
      const until = Date.now() + 10000;
      while ((await pm.getProcess(w)).restarts < 1 && Date.now() < until) await sleep(20);
      await sleep(200);
      assert.equal((await pm.getProcess(w)).restarts, 1);
    }),
  );
}
