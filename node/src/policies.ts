// Method policies (ARCHITECTURE.md section 8) as decorators that only declare:
// each checks its options when applied (a TypeError naming the option) and
// records them on the method under a global symbol; the worker runtime sends
// them in `describe` and the core applies them on the host (shared by every
// caller and by all members of a pool). They work as standard (TC39) and as
// `experimentalDecorators` method decorators; order with @Public does not matter.
//
// What needs the worker's own code is kept on the method for the worker's
// runtime instead (worker/layers.ts), under another global symbol: a Standard
// Schema validator for @Validate (zod, valibot, yup >= 1.7: any object with
// `~standard.validate`), and a key function or a `condition` for @Cache.

import { native } from './binding';

const POLICIES = Symbol.for('titan-pm.policies');
const WORKER_POLICIES = Symbol.for('titan-pm.worker-policies');

/** A duration: ms, or a string such as "30s", "1h". */
export type Duration = number | string;

export interface RateLimitOptions {
  rps: number;
  burst?: number;
  strategy?: 'token-bucket' | 'sliding-window' | 'fixed-window';
  /** An argument index, or a field of the first argument. */
  key?: number | string;
}
export interface CacheOptions {
  ttl: Duration;
  /** An argument index, a field of the first argument, or a function of the arguments (runs in the worker). */
  key?: number | string | ((...args: any[]) => unknown);
  /** Whether a result may be cached (runs in the worker). */
  condition?: (result: any) => boolean;
}
/** A Standard Schema validator (https://standardschema.dev): zod, valibot, yup >= 1.7, ... */
export interface StandardSchemaV1 {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardResult | Promise<StandardResult>;
  };
}
type StandardResult =
  | { readonly value: unknown; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> }> };
export interface ValidateOptions {
  /** A JSON Schema object (checked on the host) or a Standard Schema validator (run in the worker). */
  schema: Record<string, unknown> | StandardSchemaV1;
}

/** What runs in the worker (worker/layers.ts): a validator, a worker-side cache. */
export interface WorkerPolicies {
  validate?: StandardSchemaV1;
  cache?: { ttlMs: number; key?: number | string | ((...args: any[]) => unknown); condition?: (result: any) => boolean };
}
export interface CircuitBreakerOptions {
  threshold?: number;
  timeout?: Duration;
  halfOpenRequests?: number;
  /** A method of the same class (its name). */
  fallback?: string;
}
export interface IdempotentOptions {
  key: number | string;
  ttl?: Duration;
}
export interface SelfHealOptions {
  symptoms: string[];
  action?: 'restart' | 'recycle' | 'reinit';
  cooldown?: Duration;
}

type Marker = (target: any, context: any, descriptor?: PropertyDescriptor) => any;

function declare(name: string, options: unknown, worker?: WorkerPolicies): Marker {
  return (target: any, context: any, descriptor?: PropertyDescriptor) => {
    const standard = typeof context === 'object' && context !== null && 'kind' in context;
    const fn = standard ? target : descriptor?.value;
    if (typeof fn !== 'function' || (standard && context.kind !== 'method')) {
      throw new TypeError(`@${name} applies to methods`);
    }
    if (options !== undefined) {
      const policies = { ...(fn[POLICIES] ?? {}), [name]: options };
      Object.defineProperty(fn, POLICIES, { value: policies, configurable: true });
    }
    if (worker !== undefined) {
      Object.defineProperty(fn, WORKER_POLICIES, { value: { ...(fn[WORKER_POLICIES] ?? {}), ...worker }, configurable: true });
    }
  };
}

/** The parts of a method's policies that run in the worker (undefined for none). */
export function workerPoliciesOf(fn: unknown): WorkerPolicies | undefined {
  return typeof fn === 'function' ? (fn as any)[WORKER_POLICIES] : undefined;
}

/** The policies declared on a method (undefined for none). */
export function policiesOf(fn: unknown): Record<string, unknown> | undefined {
  return typeof fn === 'function' ? (fn as any)[POLICIES] : undefined;
}

function positive(decorator: string, option: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new TypeError(`@${decorator}({ ${option} }) must be a positive number, not ${String(v)}`);
  }
}
function whole(decorator: string, option: string, v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
    throw new TypeError(`@${decorator}({ ${option} }) must be a whole number >= 1, not ${String(v)}`);
  }
}
function duration(decorator: string, option: string, v: unknown): void {
  if (v === undefined || (typeof v === 'string' && v.trim() !== '')) return;
  positive(decorator, option, v);
}
function key(decorator: string, v: unknown): void {
  const ok = v === undefined || (typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isInteger(v) && v >= 0);
  if (!ok) throw new TypeError(`@${decorator}({ key }) must be an argument index or a field name, not ${String(v)}`);
}

export function RateLimit(options: RateLimitOptions): Marker {
  positive('RateLimit', 'rps', options?.rps);
  whole('RateLimit', 'burst', options.burst);
  if (options.strategy !== undefined && !['token-bucket', 'sliding-window', 'fixed-window'].includes(options.strategy)) {
    throw new TypeError(`@RateLimit({ strategy }) must be token-bucket, sliding-window or fixed-window, not ${options.strategy}`);
  }
  key('RateLimit', options.key);
  return declare('rateLimit', { ...options });
}

/**
 * Results per key (all arguments, the `key` argument, or `key(...args)` when `key` is a
 * function) for `ttl`; with `condition`, a result is cached only when `condition(result)`.
 * A key function or a condition needs the worker's own code, so such a cache is kept in
 * the worker (per process; a hit skips the method, not the round trip); any other
 * cache is kept on the host, shared by a pool's members.
 */
export function Cache(options: CacheOptions): Marker {
  if (options?.ttl === undefined) throw new TypeError('@Cache({ ttl }) is required');
  duration('Cache', 'ttl', options.ttl);
  if (options.condition !== undefined && typeof options.condition !== 'function') {
    throw new TypeError('@Cache({ condition }) must be a function of the result');
  }
  if (typeof options.key === 'function' || options.condition !== undefined) {
    if (options.key !== undefined && typeof options.key !== 'function') key('Cache', options.key);
    let ttlMs: number;
    try {
      ttlMs = typeof options.ttl === 'string' ? native.durationMs(options.ttl) : options.ttl;
    } catch (e: any) {
      throw new TypeError(`@Cache({ ttl }): ${e?.message ?? e}`);
    }
    if (!(ttlMs > 0)) throw new TypeError(`@Cache({ ttl }) must be > 0, not ${String(options.ttl)}`);
    return declare('cache', undefined, { cache: { ttlMs, key: options.key, condition: options.condition } });
  }
  key('Cache', options.key);
  return declare('cache', options.key === undefined ? { ttl: options.ttl } : { ttl: options.ttl, key: options.key });
}

/**
 * The first argument must pass `schema`: a JSON Schema object (checked on the host), or
 * a Standard Schema validator such as zod, valibot or yup >= 1.7 (run in the worker,
 * before the method). Invalid: ValidationError with each failing path; the method does not run.
 */
export function Validate(options: ValidateOptions): Marker {
  const s = options?.schema as any;
  if (typeof s === 'object' && s !== null && typeof s['~standard']?.validate === 'function') {
    return declare('validate', { validator: true }, { validate: s });
  }
  if (typeof s !== 'object' || s === null || Array.isArray(s) || '~standard' in s || typeof s.validate === 'function') {
    throw new TypeError(
      '@Validate({ schema }) takes a JSON Schema object or a Standard Schema validator (an object with ~standard.validate: zod, valibot, yup >= 1.7)',
    );
  }
  return declare('validate', { schema: s });
}

export function Trace(): Marker {
  return declare('trace', true);
}

export function Metric(name?: string): Marker {
  if (name !== undefined && (typeof name !== 'string' || name === '')) {
    throw new TypeError(`@Metric(name) must be a non-empty string, not ${String(name)}`);
  }
  return declare('metric', name ? { name } : true);
}

export function CircuitBreaker(options: CircuitBreakerOptions = {}): Marker {
  whole('CircuitBreaker', 'threshold', options.threshold);
  whole('CircuitBreaker', 'halfOpenRequests', options.halfOpenRequests);
  duration('CircuitBreaker', 'timeout', options.timeout);
  if (options.fallback !== undefined && (typeof options.fallback !== 'string' || options.fallback === '')) {
    throw new TypeError('@CircuitBreaker({ fallback }) must name a method of the class');
  }
  return declare('circuitBreaker', { ...options });
}

export function Idempotent(options: IdempotentOptions): Marker {
  if (options?.key === undefined) throw new TypeError('@Idempotent({ key }) is required');
  key('Idempotent', options.key);
  duration('Idempotent', 'ttl', options.ttl);
  return declare('idempotent', { ...options });
}

export function SelfHeal(options: SelfHealOptions): Marker {
  const s = options?.symptoms;
  if (!Array.isArray(s) || s.length === 0 || !s.every((x) => typeof x === 'string' && x !== '')) {
    throw new TypeError('@SelfHeal({ symptoms }) must be a non-empty list of names');
  }
  if (options.action !== undefined && !['restart', 'recycle', 'reinit'].includes(options.action)) {
    throw new TypeError(`@SelfHeal({ action }) must be restart, recycle or reinit, not ${options.action}`);
  }
  duration('SelfHeal', 'cooldown', options.cooldown);
  return declare('selfHeal', { ...options, symptoms: [...s] });
}
