// Workflows from TypeScript (both decorator modes): the seed's ComplexWorkflow
// and OrderSaga, and a cycle refused when the workflow is loaded.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MODES, fixture, withManager } = require('./helpers');
const { ConfigError, WorkflowError } = require('titan-pm');

for (const mode of MODES) {
  for (const isolation of ['worker', 'child']) {
    test(`ComplexWorkflow runs C and D together and E sees both (${mode}, ${isolation})`, () =>
      withManager({}, async (pm) => {
        const wf = await pm.workflow(fixture('complex-workflow.js', mode), { isolation });
        assert.deepEqual(wf.stages, ['A', 'B', 'C', 'D', 'E']);
        const events = [];
        wf.on('*', (e) => events.push(e));
        const result = await wf.run({ n: 1 }, { runId: `c-${mode}-${isolation}` });
        assert.deepEqual(Object.keys(result), ['A', 'B', 'C', 'D', 'E']);
        assert.deepEqual(result.A.saw, { n: 1 });
        assert.deepEqual(Object.keys(result.C.saw).sort(), ['A', 'B']);
        const { C, D, E } = result;
        assert.ok(C.start < D.end && D.start < C.end, 'C and D did not overlap');
        assert.ok(E.start >= Math.max(C.end, D.end), 'E started before C and D ended');
        assert.equal(E.saw.C.stage, 'C');
        assert.equal(E.saw.D.stage, 'D');
        // The same run id: the stored result.
        assert.deepEqual(await wf.run({ n: 1 }, { runId: `c-${mode}-${isolation}` }), result);
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(events[0].type, 'workflow:started');
        assert.equal(events.filter((e) => e.type === 'stage:completed').length, 5);
      }));
  }

  test(`OrderSaga compensates in reverse order (${mode})`, () =>
    withManager({}, async (pm) => {
      const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'titan-saga-')), 'log');
      const wf = await pm.workflow(fixture('order-saga.js', mode), { dependencies: { log } });
      await assert.rejects(wf.run({ id: 42 }, { runId: 'order-42' }), (e) => {
        assert.ok(e instanceof WorkflowError, String(e));
        assert.equal(e.stage, 'charge-payment');
        assert.equal(e.kind, 'remote');
        assert.equal(e.cause.remoteType, 'PaymentDeclined');
        assert.deepEqual(e.compensations.map((c) => c.method), ['refundPayment', 'releaseInventory', 'cancelOrder']);
        return true;
      });
      const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines, [
        ['refundPayment', null, 'remote'],
        ['releaseInventory', { reservation: 'r-1' }],
        ['cancelOrder', { orderId: 42 }],
      ]);
      const runs = await wf.runs();
      assert.equal(runs[0].runId, 'order-42');
      assert.equal(runs[0].state, 'failed');
      assert.equal((await pm.workflowRuns())[0].runId, 'order-42');
    }));

  test(`a cycle is an error when the workflow is loaded (${mode})`, () =>
    withManager({}, async (pm) => {
      await assert.rejects(pm.workflow(fixture('cyclic-workflow.js', mode)), (e) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, /stages a, b form a cycle \(a -> b -> a\)/);
        return true;
      });
      assert.deepEqual(await pm.listProcesses(), []);
    }));
}
