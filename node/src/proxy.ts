// The typed proxy `spawn` returns: any property is a method that calls the
// worker; `__processId` and `withOptions` are the handle's own.
import { native } from './binding';
import { rethrow } from './errors';
import type { CallOptions, ProcessProxy } from './types';

type NativeManager = InstanceType<typeof native.NativeManager>;

let nextCancel = 1;

/** Rejects with the signal's reason when it aborts, and drops the call (the worker's signal fires too). */
function withSignal<T>(start: (cancel: number) => Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  const token = nextCancel++;
  const call = start(token);
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      native.cancelCall(token);
      reject(signal.reason);
    };
    signal.addEventListener('abort', abort, { once: true });
    call.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}

export function makeProxy<T>(manager: NativeManager, id: number, options: CallOptions = {}): ProcessProxy<T> {
  const { timeout, key, signal } = options;
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const method = (name: string) => (...args: unknown[]) => {
    if (!signal) return manager.call(id, name, args, timeout, key).then(undefined, rethrow);
    return withSignal((cancel) => manager.call(id, name, args, timeout, key, cancel).then(undefined, rethrow), signal);
  };
  return new Proxy(Object.create(null), {
    get(_, prop) {
      if (prop === '__processId') return id;
      if (prop === 'withOptions') return (more: CallOptions) => makeProxy<T>(manager, id, { ...options, ...more });
      if (typeof prop !== 'string' || prop === 'then') return undefined; // not a thenable
      let f = methods.get(prop);
      if (!f) methods.set(prop, (f = method(prop)));
      return f;
    },
  }) as ProcessProxy<T>;
}
