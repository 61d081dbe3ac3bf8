// The worker-side parts of method policies (ARCHITECTURE.md section 8): what
// needs the worker's own code runs here, in the worker's runtime, around the
// method; everything else (rate limits, JSON Schema validation, caches with
// data keys, idempotency, breakers) is applied by the core on the host.
//
// - @Validate with a Standard Schema validator: the first argument is checked
//   before the method; failures become a ValidationError with (path, message)
//   pairs, paths as JSON pointers (`/address/zip`) as the host's JSON Schema
//   check gives them, and the method does not run.
// - @Cache with a key function or a `condition`: a per-process TTL cache of at
//   most MAX_ENTRIES results around the method (errors are never cached).
import { ValidationError } from '../errors';
import type { StandardSchemaV1, WorkerPolicies } from '../policies';

/** The most results one worker-side cache keeps (the oldest is dropped first), as the host's caches. */
export const MAX_ENTRIES = 10_000;
/** The most failures one ValidationError lists, as the host's JSON Schema check. */
export const MAX_FAILURES = 64;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as any).then === 'function';
}

function pointer(path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): string {
  return (path ?? [])
    .map((p) => '/' + String(typeof p === 'object' && p !== null ? p.key : p).replace(/~/g, '~0').replace(/\//g, '~1'))
    .join('');
}

/** A ValidationError with these failures (as the host builds one for a JSON Schema). */
export function validationError(failures: { path: string; message: string }[]): ValidationError {
  const e = new ValidationError(`validation failed: ${failures.map((f) => `${f.path || '/'}: ${f.message}`).join('; ')}`);
  e.failures = failures;
  return e;
}

function verdict(r: any): void {
  if (r && Array.isArray(r.issues) && r.issues.length > 0) {
    throw validationError(r.issues.slice(0, MAX_FAILURES).map((i: any) => ({ path: pointer(i.path), message: String(i.message) })));
  }
}

/** Checks the first argument with a Standard Schema validator: throws (or rejects with) a ValidationError. */
export function check(schema: StandardSchemaV1, args: unknown[]): void | Promise<void> {
  const r = schema['~standard'].validate(args[0]);
  return isThenable(r) ? Promise.resolve(r).then(verdict) : verdict(r);
}

/** One method's results in this worker, per key, for a ttl. */
export class WorkerCache {
  private readonly entries = new Map<string, { until: number; value: unknown }>();

  constructor(private readonly spec: NonNullable<WorkerPolicies['cache']>) {}

  key(args: unknown[]): string {
    const k = this.spec.key;
    let v: unknown;
    if (typeof k === 'function') v = k(...args);
    else if (typeof k === 'number') v = args[k];
    else if (typeof k === 'string') v = (args[0] as any)?.[k];
    else v = args;
    if (typeof v === 'string') return v;
    try {
      return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
    } catch {
      return String(v);
    }
  }

  /** `invoke()`'s result for `args`: the cached one within the ttl, else a new one (kept if the condition allows). */
  run(args: unknown[], invoke: () => unknown): unknown {
    const key = this.key(args);
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      if (hit.until > Date.now()) return hit.value;
      this.entries.delete(key);
    }
    const r = invoke();
    if (!isThenable(r)) {
      this.put(key, r);
      return r;
    }
    return Promise.resolve(r).then((v) => {
      this.put(key, v);
      return v;
    });
  }

  private put(key: string, value: unknown): void {
    if (this.spec.condition !== undefined && !this.spec.condition(value)) return;
    this.entries.delete(key);
    while (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { until: Date.now() + this.spec.ttlMs, value });
  }
}

/** The worker-side layers of one method, built once per runtime. */
export class Layers {
  private readonly cache?: WorkerCache;

  constructor(private readonly spec: WorkerPolicies) {
    if (spec.cache) this.cache = new WorkerCache(spec.cache);
  }

  /** Runs `invoke` (the method on `args`) inside the layers. */
  run(args: unknown[], invoke: () => unknown): unknown {
    const cached = this.cache ? () => this.cache!.run(args, invoke) : invoke;
    if (!this.spec.validate) return cached();
    const checked = check(this.spec.validate, args);
    return isThenable(checked) ? checked.then(cached) : cached();
  }
}
