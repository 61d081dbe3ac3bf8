// The typed proxy `spawn` returns: any property is a method that calls the
// worker; `__processId` and `withOptions` are the handle's own.
import { native } from './binding';
import { rethrow } from './errors';
import type { EventEmitter } from 'node:events';

import type { CallOptions, PoolMetrics, PoolProxy, ProcessProxy } from './types';

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

type Call = (name: string, args: unknown[], timeout?: number, key?: string, cancel?: number, retries?: number) => Promise<unknown>;

/** Any property is a method calling the worker; `own` properties come first. */
export function callProxy(call: Call, options: CallOptions, own: (prop: string) => unknown): any {
  const { timeout, key, signal, retries } = options;
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const method = (name: string) => (...args: unknown[]) => {
    if (!signal) return call(name, args, timeout, key, undefined, retries).then(undefined, rethrow);
    return withSignal((cancel) => call(name, args, timeout, key, cancel, retries).then(undefined, rethrow), signal);
  };
  return new Proxy(Object.create(null), {
    get(_, prop) {
      // Not a thenable, and not something JSON.stringify or inspection would call.
      if (typeof prop !== 'string' || prop === 'then' || prop === 'toJSON' || prop === 'constructor') return undefined;
      const value = own(prop);
      if (value !== undefined) return value;
      let f = methods.get(prop);
      if (!f) methods.set(prop, (f = method(prop)));
      return f;
    },
  });
}

/** `more` over `options`, checked by the core's call-option reader (a bad `retries` or an unknown key throws ConfigError). */
function merged(options: CallOptions, more: CallOptions): CallOptions {
  const { signal: _signal, ...rest } = more ?? {};
  try {
    native.checkCallOptions(rest);
  } catch (e) {
    rethrow(e);
  }
  return { ...options, ...more };
}

export function makeProxy<T>(manager: NativeManager, id: number, options: CallOptions = {}): ProcessProxy<T> {
  const call: Call = (name, args, timeout, key, cancel, retries) => manager.call(id, name, args, timeout, key, cancel, retries);
  return callProxy(call, options, (prop) => {
    if (prop === '__processId') return id;
    if (prop === 'withOptions') return (more: CallOptions) => makeProxy<T>(manager, id, merged(options, more));
    return undefined;
  });
}

/** What a pool proxy shares across its `withOptions` views. */
export interface PoolState {
  size: number;
  events: EventEmitter;
}

export function makePoolProxy<T>(manager: NativeManager, id: number, state: PoolState, options: CallOptions = {}): PoolProxy<T> {
  const call: Call = (name, args, timeout, key, cancel, retries) => manager.poolCall(id, name, args, timeout, key, cancel, retries);
  let proxy: PoolProxy<T>;
  const own: Record<string, unknown> = {
    __poolId: id,
    withOptions: (more: CallOptions) => makePoolProxy<T>(manager, id, state, merged(options, more)),
    scale: async (n: number) => {
      await manager.poolScale(id, n).catch(rethrow);
      state.size = (await manager.poolSize(id).catch(rethrow)) as number;
    },
    metrics: () => manager.poolMetrics(id).catch(rethrow) as Promise<PoolMetrics>,
    drain: () => manager.poolDrain(id).catch(rethrow),
    destroy: () => manager.poolDestroy(id).catch(rethrow),
    on: (event: string, listener: (...args: any[]) => void) => (state.events.on(event, listener), proxy),
    once: (event: string, listener: (...args: any[]) => void) => (state.events.once(event, listener), proxy),
    off: (event: string, listener: (...args: any[]) => void) => (state.events.off(event, listener), proxy),
  };
  proxy = callProxy(call, options, (prop) => (prop === 'size' ? state.size : own[prop]));
  return proxy;
}
