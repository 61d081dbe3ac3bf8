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

/**
 * Bytes a worker thread's stdout or stderr may hold while the host thread has
 * not taken them (it is busy): past it a write is dropped and counted.
 */
export const OUTPUT_QUEUE_BYTES = 4 << 20;

/**
 * A worker thread's stdout/stderr reach the host thread as messages it takes
 * when it is free; until then Node buffers the writes without a bound. Bounds
 * them: a write past `OUTPUT_QUEUE_BYTES` is dropped and counted, and once the
 * stream drains the count goes to the host (the manager's `output:dropped`).
 */
function boundOutput(): void {
  let dropped = 0;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write;
    stream.write = function (this: unknown, chunk: unknown, ...rest: unknown[]): boolean {
      if (stream.writableLength >= OUTPUT_QUEUE_BYTES) {
        dropped++;
        // Told at once (a nextTick per dropped write would itself pile up in a busy loop).
        const done = rest.find((a) => typeof a === 'function') as ((e: null) => void) | undefined;
        done?.(null);
        return false;
      }
      return (write as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
    } as typeof stream.write;
    stream.on('drain', () => {
      if (dropped === 0) return;
      parentPort?.postMessage({ titanOutputDropped: dropped });
      dropped = 0;
    });
  }
}

/** A worker thread: load the target, attach to the slot, tell the host. */
async function thread(slot: number, target: string): Promise<void> {
  boundOutput();
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

/**
 * A worker thread started ahead by a host (manager.ts `#standby`): this runtime and the addon
 * are loaded (it says so); the first message names the slot, the target and the host's environment now.
 */
function standby(): void {
  parentPort?.once('message', (m: { titanSlot: number; target: string; env: Record<string, string> }) => {
    for (const key of Object.keys(process.env)) if (!(key in m.env)) delete process.env[key];
    Object.assign(process.env, m.env);
    void thread(m.titanSlot, m.target);
  });
  parentPort?.postMessage({ titanStandbyReady: true });
}

if (!isMainThread && workerData && typeof workerData.titanSlot === 'number') {
  void thread(workerData.titanSlot, workerData.target);
} else if (!isMainThread && workerData?.titanStandby === true) {
  standby();
}
