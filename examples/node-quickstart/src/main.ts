// A host: spawns the calculator in a worker thread and in a child process,
// calls it through the typed proxy, and shuts everything down.
import * as path from 'node:path';
import { CallTimeoutError, ProcessManager, RemoteError } from 'titan-pm';
import type Calculator from './calculator.process';

async function main(): Promise<void> {
  const pm = new ProcessManager({ isolation: 'worker', transport: 'ipc' });
  pm.on('crash', (e) => console.log('crash', e));
  const file = path.join(__dirname, 'calculator.process.js');

  const calc = await pm.spawn<Calculator>(file, { dependencies: { config: { precision: 3 } } });
  const sum: number = await calc.add(5, 3); // typed as Promise<number>
  console.log(`add(5, 3) = ${sum}`);
  console.log(`divide(10, 3) = ${await calc.divide(10, 3)}`);
  try {
    await calc.divide(1, 0);
  } catch (e) {
    if (e instanceof RemoteError) console.log(`divide(1, 0) raised ${e.remoteType}: ${e.remoteMessage}`);
  }
  try {
    await calc.withOptions({ timeout: 100 }).slow(5000);
  } catch (e) {
    if (e instanceof CallTimeoutError) console.log(`slow(5000) with a 100 ms deadline: ${e.message}`);
  }

  const child = await pm.spawn<Calculator>(file, { isolation: 'child', dependencies: { config: { precision: 1 } } });
  console.log(`in a child process: divide(10, 3) = ${await child.divide(10, 3)}`);

  console.log('health:', (await pm.getHealth(calc.__processId)).checks[0].message);
  const m = await pm.getMetrics(calc.__processId);
  console.log(`metrics: ${m.requests} requests, ${m.errors} errors, p50 ${m.latency.p50.toFixed(3)} ms`);
  for (const p of await pm.listProcesses()) console.log(`process ${p.processId}: ${p.name} ${p.isolation} ${p.state}`);

  await pm.shutdown(); // drains calls, runs @OnShutdown, stops the workers; the host then exits
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
