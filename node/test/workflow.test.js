// Workflows from TypeScript (both decorator modes): the seed's ComplexWorkflow
// and OrderSaga, stage retries and timeouts, and a cycle refused when the
// workflow is loaded. Every test shuts its manager down (withManager), and ends
// its event listeners with it.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MODES, eventually, fixture, withManager } = require('./helpers');

const tmpLog = (prefix) => path.join(fs.mkdtempSync(path.join(os.tmpdir(), prefix)), 'log');
const readLog = (file) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
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
      const log = tmpLog('titan-saga-');
      const wf = await pm.workflow(fixture('order-saga.js', mode), { dependencies: { log } });
      await assert.rejects(wf.run({ id: 42 }, { runId: 'order-42' }), (e) => {
        assert.ok(e instanceof WorkflowError, String(e));
        assert.equal(e.stage, 'charge-payment');
        assert.equal(e.kind, 'remote');
        assert.equal(e.cause.remoteType, 'PaymentDeclined');
        assert.deepEqual(e.compensations.map((c) => c.method), ['refundPayment', 'releaseInventory', 'cancelOrder']);
        return true;
      });
      assert.deepEqual(readLog(log), [
        ['refundPayment', null, 'remote'],
        ['releaseInventory', { reservation: 'r-1' }],
        ['cancelOrder', { orderId: 42 }],
      ]);
      const runs = await wf.runs();
      assert.equal(runs[0].runId, 'order-42');
      assert.equal(runs[0].state, 'failed');
      assert.equal((await pm.workflowRuns())[0].runId, 'order-42');
    }));

  test(`a stage that fails once succeeds on its retry (${mode})`, () =>
    withManager({}, async (pm) => {
      const log = tmpLog('titan-flaky-');
      const wf = await pm.workflow(fixture('flaky-workflow.js', mode), { dependencies: { log } });
      const events = [];
      wf.on('*', (e) => events.push(e));
      const result = await wf.run({ n: 21 }, { runId: `flaky-${mode}` });
      assert.deepEqual(result, { prepare: { n: 21 }, flaky: { doubled: 42, attempt: 2 } });
      // Two attempts, one idempotency key.
      assert.deepEqual(readLog(log), [
        ['flaky', 1, `flaky-${mode}/flaky`],
        ['flaky', 2, `flaky-${mode}/flaky`],
      ]);
      assert.ok(await eventually(() => events.some((e) => e.type === 'workflow:completed')), 'no workflow:completed event');
      const flaky = events.filter((e) => e.stage === 'flaky').map((e) => e.type);
      assert.deepEqual(flaky, ['stage:started', 'stage:failed', 'stage:retrying', 'stage:started', 'stage:completed']);
      assert.equal((await wf.runs())[0].state, 'completed');
    }));

  test(`a stage past its timeout fails the run, is cancelled in the worker, and compensation runs (${mode})`, () =>
    withManager({}, async (pm) => {
      const log = tmpLog('titan-timeout-');
      const wf = await pm.workflow(fixture('timeout-workflow.js', mode), { dependencies: { log } });
      const started = Date.now();
      await assert.rejects(wf.run(null, { runId: `timeout-${mode}` }), (e) => {
        assert.ok(e instanceof WorkflowError, String(e));
        assert.equal(e.stage, 'slow');
        assert.equal(e.kind, 'timeout');
        assert.deepEqual(e.compensations.map((c) => [c.stage, c.method, c.error ?? null]), [['book', 'unbook', null]]);
        return true;
      });
      assert.ok(Date.now() - started < 10_000, 'the timeout did not end the attempt');
      // The attempt was cancelled in the worker before the compensation ran.
      assert.deepEqual(readLog(log), [
        ['slow:started', 1],
        ['slow:cancelled', 1],
        ['unbook', { booking: 'b-1' }],
      ]);
      assert.equal((await wf.runs())[0].state, 'failed');
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

// A workflow's event listener must not keep the host alive: the script ends once its run is done,
// with pm.shutdown() and without it (node's own exit, not --test-force-exit). Without shutdown the
// workflow runs in a child: a live worker thread (isolation 'worker') keeps a host alive until shutdown.
for (const shutdown of [true, false]) {
  test(`a host listening to a workflow exits when it is done (${shutdown ? 'after shutdown' : 'without shutdown'})`, () => {
    const script = `
      const { ProcessManager } = require(${JSON.stringify(require.resolve('titan-pm'))});
      (async () => {
        const pm = new ProcessManager({ output: 'ignore' });
        const wf = await pm.workflow(${JSON.stringify(fixture('complex-workflow.js'))}, { isolation: '${shutdown ? 'worker' : 'child'}' });
        let events = 0;
        wf.on('*', () => events++);
        await wf.run({ n: 1 }, { runId: 'exit' });
        ${shutdown ? 'await pm.shutdown();' : ''}
        console.log('ran');
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null, `the host did not exit by itself (killed after 30 s); stderr: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ran');
  });
}

// A run survives its host: SIGKILL a Node host during stage 3; a new host on the same journal and
// run id does not run stages 1-2 again, runs 3 (again: at least once) and 4; the same id once more
// returns the stored result and runs nothing.
test('a run resumes on a new host after the first is killed mid-stage', async () => {
  const { spawn } = require('node:child_process');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'titan-wf-durable-'));
  const journal = path.join(dir, 'runs.db');
  const log = path.join(dir, 'stages.log');
  const lines = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  const host = (hang) => `
    const { ProcessManager } = require(${JSON.stringify(require.resolve('titan-pm'))});
    (async () => {
      const pm = new ProcessManager({ output: 'ignore', workflows: { journal: ${JSON.stringify(journal)}, lease: 1000 } });
      const wf = await pm.workflow(${JSON.stringify(fixture('chain-workflow.js'))},
        { isolation: 'worker', dependencies: { log: ${JSON.stringify(log)}, hang: ${hang} } });
      const result = await wf.run({ order: 7 }, { runId: 'order-7' });
      console.log('RESULT ' + JSON.stringify(result));
      await pm.shutdown();
    })();`;
  const runHost = () => {
    const r = spawnSync(process.execPath, ['-e', host(false)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('RESULT ')).slice('RESULT '.length));
  };
  try {
    const first = spawn(process.execPath, ['-e', host(true)], { stdio: 'ignore' });
    const exited = new Promise((resolve) => first.once('exit', resolve));
    try {
      assert.ok(await eventually(() => lines().length === 3, 30_000), `the first host never reached stage 3: ${lines()}`);
    } finally {
      first.kill('SIGKILL');
      await exited;
    }
    assert.deepEqual(lines(), ['s1 order-7/s1', 's2 order-7/s2', 's3 order-7/s3']);

    const result = runHost(); // waits out the dead host's 1 s lease, then resumes
    assert.deepEqual(lines(), ['s1 order-7/s1', 's2 order-7/s2', 's3 order-7/s3', 's3 order-7/s3', 's4 order-7/s4']);
    assert.deepEqual(result, { s1: 's1 done', s2: 's2 done', s3: 's3 done', s4: 's4 done' });

    assert.deepEqual(runHost(), result); // the stored result: nothing runs
    assert.equal(lines().length, 5);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
