// Lifecycle: the shutdown hook, crashes mid-call, restart with the same id,
// deadlines that abort the method's AbortSignal, kill, the restart budget,
// and a host that exits on its own after shutdown.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ISOLATIONS, fixture, source, withManager, eventually } = require('./helpers');
const { CallTimeoutError, ProcessCrashedError, ProcessFailedError, ProcessManager } = require('titan-pm');

const fast = { restartPolicy: { initialBackoff: 10 } };

for (const isolation of ISOLATIONS) {
  test(`shutdown runs the @OnShutdown hook (${isolation})`, { timeout: 30000 }, async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'titan-')), 'shutdown.txt');
    const pm = new ProcessManager({ isolation, output: 'ignore' });
    const calc = await pm.spawn(fixture('calculator.js'), { dependencies: { config: { shutdownFile: file } } });
    await calc.increment();
    await pm.shutdown();
    assert.equal(fs.readFileSync(file, 'utf8'), 'cleaned up after 1');
    const err = await calc.add(1, 1).then(() => null, (e) => e);
    assert.ok(err instanceof ProcessFailedError, String(err));
    assert.equal(err.state, 'stopped');
  });

  test(`a crash mid-call fails the call and the process restarts with the same id (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation, ...fast }, async (pm) => {
      const crashes = [];
      pm.on('crash', (e) => crashes.push(e));
      const calc = await pm.spawn(fixture('calculator.js'));
      await calc.increment();
      const err = await calc.crash(7).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessCrashedError, String(err));
      assert.equal(err.exitCode, 7);
      assert.equal(err.processId, calc.__processId);
      // The next call waits for the new instance; its state starts afresh.
      assert.equal(await calc.increment(), 1);
      const info = await pm.getProcess(calc);
      assert.equal(info.restarts, 1);
      assert.equal(info.state, 'running');
      assert.deepEqual(crashes.map((c) => c.exitCode), [7]);
    }),
  );

  test(`a deadline aborts the method's AbortSignal (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const started = Date.now();
      const err = await calc.withOptions({ timeout: 200 }).slow(20000).then(() => null, (e) => e);
      assert.ok(err instanceof CallTimeoutError, String(err));
      assert.equal(err.timeoutMs, 200);
      assert.ok(Date.now() - started < 10000);
      assert.ok(await eventually(() => calc.wasAborted()), 'the method never saw its signal abort');
      assert.equal(await calc.add(2, 3), 5);
    }),
  );

  test(`an AbortSignal rejects the call and cancels it in the worker (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      const controller = new AbortController();
      const call = calc.withOptions({ signal: controller.signal }).slow(20000);
      setTimeout(() => controller.abort(), 100);
      const err = await call.then(() => null, (e) => e);
      assert.equal(err?.name, 'AbortError', String(err));
      assert.ok(await eventually(() => calc.wasAborted()), 'the method never saw its signal abort');
      assert.equal(await calc.add(2, 3), 5);
    }),
  );

  test(`kill stops the process for good (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      await pm.kill(calc);
      const err = await calc.add(1, 1).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessFailedError, String(err));
      assert.equal(err.state, 'stopped');
      // A killed process leaves the list (after its exit event).
      assert.ok(await eventually(async () => (await pm.listProcesses()).every((p) => p.processId !== calc.__processId)));
    }),
  );

  test(`after the restart budget the process is failed and calls fail fast (${isolation})`, { timeout: 30000 }, () =>
    withManager({ isolation, restartPolicy: { maxRestarts: 1, initialBackoff: 10 } }, async (pm) => {
      const calc = await pm.spawn(fixture('calculator.js'));
      await calc.crash(3).catch(() => {});
      await calc.crash(3).catch(() => {});
      assert.ok(await eventually(async () => (await pm.getProcess(calc)).state === 'failed'));
      const err = await calc.add(1, 1).then(() => null, (e) => e);
      assert.ok(err instanceof ProcessFailedError && err.state === 'failed', String(err));
    }),
  );
}

test('a child killed by a signal reports the signal name', { timeout: 30000 }, () =>
  withManager({ isolation: 'child', ...fast }, async (pm) => {
    const crashes = [];
    pm.on('crash', (e) => crashes.push(e.signal));
    const calc = await pm.spawn(fixture('calculator.js'));
    const err = await calc.kill('SIGKILL').then(() => null, (e) => e);
    assert.ok(err instanceof ProcessCrashedError, String(err));
    assert.equal(err.signal, 'SIGKILL');
    assert.ok(await eventually(() => crashes.length === 1));
    assert.deepEqual(crashes, ['SIGKILL']);
    assert.equal(await calc.add(1, 2), 3);
  }),
);

test('a host exits on its own after shutdown', { timeout: 30000 }, async () => {
  const script = `
    const { ProcessManager } = require('titan-pm');
    (async () => {
      const pm = new ProcessManager({ output: 'ignore' });
      const a = await pm.spawn(${JSON.stringify(fixture('calculator.js'))});
      const b = await pm.spawn(${JSON.stringify(fixture('calculator.js'))}, { isolation: 'child' });
      console.log(await a.add(1, 2), await b.add(3, 4));
      await pm.shutdown();
    })();`;
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { cwd: __dirname, timeout: 20000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout }),
    );
  });
  assert.equal(stdout.trim(), '3 7');
});

test('a worker thread started ahead serves the next spawn as a new thread would, and shutdown ends it', { timeout: 60000 }, async () => {
  // After its first worker thread is ready a manager starts the next one ahead (manager.ts `#standby`):
  // the next spawn sees the host's environment as it is at that spawn, a heap limit still gets a
  // thread of its own, and the host exits after shutdown with a thread waiting ahead.
  const script = `
    const { ProcessManager } = require('titan-pm');
    const file = ${JSON.stringify(source('env-reader.cjs'))};
    process.env.TITAN_TEST_EARLY = 'early';
    (async () => {
      const pm = new ProcessManager({ output: 'ignore' });
      const a = await pm.spawn(file);
      await new Promise((r) => setTimeout(r, 1000)); // the next thread is started ahead meanwhile
      process.env.TITAN_TEST_LATE = 'late';
      delete process.env.TITAN_TEST_EARLY;
      const b = await pm.spawn(file);
      const c = await pm.spawn(file, { resources: { maxMemory: '64MB' } });
      console.log(JSON.stringify([await a.env('TITAN_TEST_EARLY'), await a.env('TITAN_TEST_LATE'),
        await b.env('TITAN_TEST_EARLY'), await b.env('TITAN_TEST_LATE'), await c.env('TITAN_TEST_LATE'), await c.heapLimitMb() < 200]));
      await new Promise((r) => setTimeout(r, 1000)); // and the next one again
      await pm.shutdown();
    })();`;
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { cwd: __dirname, timeout: 30000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout }),
    );
  });
  assert.deepEqual(JSON.parse(stdout.trim()), ['early', null, null, 'late', 'late', true]);
});
