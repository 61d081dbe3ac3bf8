// The HTTP gateway of a listening host (`listen({..., gateway: {address, token}})`):
// fetch calls a Node worker through it and gets its result, an error carrying its
// kind, 401 without the bearer token, and Prometheus text from /metrics.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { fixture, withManager } = require('./helpers');
const { ConfigError } = require('titan-pm');

const TOKEN = 'gw-t0ken';

/** One request with its own deadline (a hang fails): status and body text. */
async function http(method, url, { body, token = TOKEN, headers = {} } = {}) {
  const h = { ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  const r = await fetch(url, { method, body, headers: h, signal: AbortSignal.timeout(30000) });
  return { status: r.status, text: await r.text() };
}

test('fetch calls a node worker through the gateway: results, error kinds, 401, /metrics', { timeout: 60000 }, () =>
  withManager({}, async (pm) => {
    await pm.listen({ address: '127.0.0.1:0', token: 'join', gateway: { address: '127.0.0.1:0', token: TOKEN } });
    const base = `http://${pm.gatewayAddress()}`;
    const calc = await pm.spawn(fixture('calculator.js'));
    const id = calc.__processId;
    let r = await http('POST', `${base}/processes/${id}/add`, { body: '[2, 3]' });
    assert.deepEqual([r.status, JSON.parse(r.text)], [200, 5], r.text);
    // The method threw: its kind and type.
    r = await http('POST', `${base}/processes/${id}/fail`, { body: '["nope"]' });
    const error = JSON.parse(r.text).error;
    assert.deepEqual([r.status, error.kind, error.remoteType, error.message], [500, 'Remote', 'RangeError', 'nope'], r.text);
    r = await http('POST', `${base}/processes/${id}/missing`, { body: '[]' });
    assert.deepEqual([r.status, JSON.parse(r.text).error.kind], [404, 'MethodNotFound'], r.text);
    r = await http('POST', `${base}/processes/${id}/slow`, { body: '[5000]', headers: { 'titan-timeout-ms': '200' } });
    assert.deepEqual([r.status, JSON.parse(r.text).error.kind], [504, 'CallTimeout'], r.text);
    for (const token of [null, 'wrong']) {
      r = await http('POST', `${base}/processes/${id}/add`, { body: '[1, 2]', token });
      assert.deepEqual([r.status, JSON.parse(r.text).error.kind], [401, 'Unauthorized'], r.text);
      r = await http('GET', `${base}/metrics`, { token });
      assert.equal(r.status, 401);
    }
    r = await http('GET', `${base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.text, /^# TYPE titan_process_requests counter$/m);
    assert.match(r.text, new RegExp(`^titan_process_requests_total\\{process_id="${id}",name="[^"]+"\\} \\d+$`, 'm'), r.text);
  }));

test('a gateway without tls listens only on loopback; unknown keys are refused', { timeout: 30000 }, () =>
  withManager({}, async (pm) => {
    await assert.rejects(pm.listen({ address: '127.0.0.1:0', token: 'join', gateway: { address: '0.0.0.0:0', token: TOKEN } }), (e) => e instanceof ConfigError && /only on loopback/.test(e.message));
    await assert.rejects(pm.listen({ address: '127.0.0.1:0', token: 'join', gateway: { address: '127.0.0.1:0', token: TOKEN, port: 1 } }), (e) => e instanceof ConfigError && /gateway\.port: unknown option/.test(e.message));
    assert.equal(pm.gatewayAddress(), undefined);
  }));
