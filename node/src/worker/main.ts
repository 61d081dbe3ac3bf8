// The entry of a Node worker: `main()` serves a child process (the command the
// core runs for a .js/.mjs/.cjs target), and a worker thread started by a
// Node host runs this file with `workerData` naming its slot.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

import { native } from '../binding';
import { Runtime } from './runtime';

/** Serves the worker file named by `process.argv[1]` to the host that started this process. */
export async function main(): Promise<void> {
  try {
    native.takeEndpoint(); // before user code can read the secret
  } catch (e: any) {
    console.error(`titan-pm: ${e.message}`);
    process.exit(2);
  }
  let runtime: Runtime;
  try {
    runtime = await Runtime.load(process.argv[1]);
  } catch (e: any) {
    console.error(`titan-pm: ${e.message}`);
    process.exit(1);
  }
  native.serveChild(runtime.description(), runtime.dispatch);
}

/** A worker thread: load the target, attach to the slot, tell the host. */
async function thread(slot: number, target: string): Promise<void> {
  let runtime: Runtime;
  try {
    runtime = await Runtime.load(target);
  } catch (e: any) {
    native.attachFailed(slot, e.message);
    parentPort?.postMessage({ ok: false, message: e.message });
    return;
  }
  native.attach(slot, runtime.description(), runtime.dispatch, false);
  parentPort?.postMessage({ ok: true, description: runtime.description() });
}

if (!isMainThread && workerData && typeof workerData.titanSlot === 'number') {
  void thread(workerData.titanSlot, workerData.target);
}
