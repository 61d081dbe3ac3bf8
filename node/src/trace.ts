// The call a worker method is serving: its W3C trace context, as the core put it
// in the call's CallContext. The runtime (worker/runtime.ts) runs each call
// inside an AsyncLocalStorage holding it, so `getTraceContext()` sees it in the
// method and in everything the method awaits, and calls running at the same
// time never see each other's. The store is keyed by a global symbol, so two
// copies of this module (a bundled worker) still share it.
import { AsyncLocalStorage } from 'node:async_hooks';

/** A call's W3C trace context: a 32-hex trace id, 16-hex span ids. */
export interface TraceContext {
  traceId: string;
  spanId: string;
  /** The caller's span; empty for a root span. */
  parentSpanId: string;
  /** The W3C `traceparent` header: `00-{traceId}-{spanId}-01`. */
  traceparent: string;
}

const KEY = Symbol.for('titan-pm.trace-context');
const store: AsyncLocalStorage<TraceContext> = ((globalThis as any)[KEY] ??= new AsyncLocalStorage<TraceContext>());

/** Inside a worker method: the current call's trace context; undefined outside a call. */
export function getTraceContext(): TraceContext | undefined {
  return store.getStore();
}

/** Runs `work` as the call whose context is `[traceId, spanId, parentSpanId]` (the agent's order). */
export function runInTrace<T>(trace: readonly [string, string, string] | null | undefined, work: () => T): T {
  if (!trace || !trace[0]) return work();
  const [traceId, spanId, parentSpanId] = trace;
  return store.run({ traceId, spanId, parentSpanId, traceparent: `00-${traceId}-${spanId}-01` }, work);
}
