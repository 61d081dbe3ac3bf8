// What a worker is given by its host: other processes to call (@InjectProcess,
// the host's `processes: {...}` spawn option or a supervised child's
// `inject: [...]`) and its class's host-held shared state (@SharedState).
//
//   @Process({ name: 'orders' })
//   export default class Orders {
//     @InjectProcess(UserService) users!: GivenProcess<UserService>;   // or @InjectProcess('users')
//     @SharedState() placed = 0;
//     @Public() async place(id: number) {
//       const user = await this.users.getUser(id);   // a host proxy's API and error classes
//       this.placed++;                                // sent to the host as an atomic add(1)
//       return { order: await sharedValue(this, 'placed').get(), user };
//     }
//   }
//
// With experimentalDecorators, @InjectProcess also marks a constructor
// parameter (`constructor(@InjectProcess('users') private users: ...)`); TC39
// decorators have no parameter decorators, so there it marks fields (and
// accessors). Every operation goes to the core through the grant the INIT
// request named (agent.rs); its outcome comes back as a REPLY. Which process a
// name reaches (exactly those given, anything else is a ConfigError) and what
// shared state makes atomic are the core's.
import { native } from './binding';
import { definitionOf, isStandard } from './decorators';
import { ConfigError, rethrow } from './errors';
import { callProxy, handleId } from './proxy';
import { getTraceContext } from './trace';
import type { Methods } from './types';

const INJECT = Symbol.for('titan-pm.inject');
const INJECT_PARAMS = Symbol.for('titan-pm.inject-params');
const SHARED = Symbol.for('titan-pm.shared');

/** A process given to this worker: a host proxy's call API (`await users.getUser(1)`). */
export type GivenProcess<T = any> = Methods<T> & {
  /** The name it was given under. */
  readonly __processName: string;
  /** A view whose calls have this deadline (ms). */
  withOptions(options: { timeout?: number }): GivenProcess<T>;
};

/** A @SharedState property, held by the host: one value for every instance of the class. */
export interface Shared<V = unknown> {
  /** The value (the decorator's `initial` while it was never set). */
  get(): Promise<V>;
  set(value: V): Promise<void>;
  /** Adds `delta` (default 1) in one step on the host and returns the new value: increments from every instance are never lost. A value never set counts as 0. */
  add(delta?: number): Promise<number>;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** One runtime's grants: what the host handed its instance at INIT. */
export class Given {
  /** The grant id from INIT (0 before it). */
  grant = 0;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly processes = new Map<string, GivenProcess>();

  /** Starts an operation under a fresh token; its REPLY settles the promise. */
  start(op: (token: number) => void): Promise<unknown> {
    if (this.grant === 0) {
      return Promise.reject(new ConfigError('this worker was given nothing yet: processes and shared state are usable from init on'));
    }
    const token = this.next++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(token, { resolve, reject });
      try {
        op(token);
      } catch (e) {
        this.pending.delete(token);
        reject(e);
      }
    }).then(undefined, rethrow);
  }

  /** A REPLY from the agent. */
  settle(token: number, value: unknown, ok: boolean): void {
    const p = this.pending.get(token);
    if (!p) return;
    this.pending.delete(token);
    if (ok) p.resolve(value);
    else p.reject(value);
  }

  process(name: string, options: { timeout?: number } = {}): GivenProcess {
    const cached = options.timeout === undefined ? this.processes.get(name) : undefined;
    if (cached) return cached;
    const call = (method: string, args: unknown[], timeout?: number) =>
      this.start((token) => {
        const t = getTraceContext();
        native.grantCall(this.grant, token, name, method, args, timeout ?? null, t ? [t.traceId, t.spanId, t.parentSpanId] : null);
      });
    const proxy = callProxy(call, options, (prop) => {
      if (prop === '__processName') return name;
      if (prop === 'withOptions') {
        return (more: { timeout?: number }) => {
          const bad = Object.keys(more ?? {}).filter((k) => k !== 'timeout');
          if (bad.length) throw new ConfigError(`withOptions on a given process takes timeout only, not ${bad.join(', ')}`);
          return this.process(name, { ...options, ...more });
        };
      }
      return undefined;
    }) as GivenProcess;
    if (options.timeout === undefined) this.processes.set(name, proxy);
    return proxy;
  }

  shared<V>(property: string, initial: V): Shared<V> {
    return {
      get: () => this.start((token) => native.grantSharedGet(this.grant, token, property, initial)) as Promise<V>,
      set: (value: V) => this.start((token) => native.grantSharedSet(this.grant, token, property, value)).then(() => undefined),
      add: (delta = 1) => this.start((token) => native.grantSharedAdd(this.grant, token, property, delta)) as Promise<number>,
    };
  }

  private readonly views = new Map<string, SharedView>();

  /** The instance's local view of a @SharedState property (made once, at construction). */
  view(property: string, initial: unknown): SharedView {
    let v = this.views.get(property);
    if (!v) this.views.set(property, (v = new SharedView(this, property, initial)));
    return v;
  }

  /** At INIT: seeds each shared property with its initial value if no instance did yet, and loads its value. */
  async loadShared(): Promise<void> {
    await Promise.all([...this.views.values()].map((v) => v.load()));
  }
}

/**
 * One instance's view of a @SharedState property. The rule is core's (`SharedView` in
 * core/src/agent/shared_view.rs): reading returns the view at once; writing a number sends the
 * delta from the view as an atomic `add` (so concurrent increments are never lost) and the view
 * becomes the written value, then the host's total when the add's reply comes (plus this
 * instance's adds still in flight); writing anything else is a plain `set`. This class only
 * hands values over.
 */
export class SharedView {
  private readonly native: InstanceType<typeof native.NativeSharedView>;

  constructor(readonly given: Given, readonly property: string, readonly initial: unknown) {
    this.native = new native.NativeSharedView(property, initial);
  }

  load(): Promise<void> {
    return this.given.start((token) => this.native.load(this.given.grant, token)).then(() => undefined);
  }

  read(): unknown {
    try {
      return this.native.read();
    } catch (e) {
      rethrow(e);
    }
  }

  write(value: unknown): void {
    if (this.given.grant === 0) throw new ConfigError(`${this.property} is shared state: it can be written from init on`);
    try {
      this.native.write(this.given.grant, value);
    } catch (e) {
      rethrow(e);
    }
  }
}

// How a process handle travels in spawn `dependencies` (core's host::grants::PROCESS_REF), and what
// the worker's init gets in its place (GIVEN_REF): core makes the one a grant and the other.
const PROCESS_REF = '$process';
const GIVEN_REF = '$given';

/**
 * Host side: process and pool proxies among spawn `dependencies` become `{ $process: id }`,
 * which the core gives to the worker (the sidecar pattern). Returns `{ dependencies }` if any changed.
 */
export function processRefs(dependencies: unknown): { dependencies?: Record<string, unknown> } {
  if (!dependencies || typeof dependencies !== 'object' || Array.isArray(dependencies)) return {};
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(dependencies)) {
    const id = handleId(v);
    if (typeof id === 'number') {
      out[key] = { [PROCESS_REF]: id };
      changed = true;
    } else out[key] = v;
  }
  return changed ? { dependencies: out } : {};
}

/** Worker side: each `{ $given: name }` among init's dependencies becomes the process given under `name`. */
export function givenRefs(given: Given, dependencies: unknown[]): unknown[] {
  return dependencies.map((v) => {
    if (typeof v !== 'object' || v === null) return v;
    const keys = Object.keys(v);
    const name = (v as any)[GIVEN_REF];
    return keys.length === 1 && typeof name === 'string' ? given.process(name) : v;
  });
}

/** Worker side: each call argument `{ $given: name }` (a handle the host passed, given with the call) becomes that process. */
export function argRefs(given: Given, args: unknown[]): unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as any;
    if (typeof a !== 'object' || a === null || typeof a[GIVEN_REF] !== 'string' || Object.keys(a).length !== 1) continue;
    out ??= [...args];
    out[i] = given.process(a[GIVEN_REF]);
  }
  return out ?? args;
}

let constructing: Given | undefined;
const instances = new WeakMap<object, Given>();

function givenOf(instance: object): Given {
  const g = instances.get(instance) ?? constructing;
  if (!g) throw new ConfigError(`${instance?.constructor?.name ?? 'this object'} is not served as a worker: nothing was given to it`);
  return g;
}

function processName(target: unknown): string {
  if (typeof target === 'string' && target !== '') return target;
  const def = definitionOf(target);
  if (def) return def.name;
  throw new TypeError(`@InjectProcess needs a process name or a @Process class, not ${typeof target === 'function' ? `class ${target.name}` : String(target)}`);
}

function record(cls: any, key: symbol, entry: unknown): void {
  const own: unknown[] = Object.prototype.hasOwnProperty.call(cls, key) ? cls[key] : [...(cls[key] ?? [])];
  own.push(entry);
  Object.defineProperty(cls, key, { value: own, configurable: true });
}

/**
 * `@InjectProcess(UserService)` / `@InjectProcess('users')`: the process given to
 * this worker under that name (a `@Process` class stands for its name).
 */
export function InjectProcess(target: string | (abstract new (...args: any[]) => unknown)): any {
  const name = processName(target);
  return (proto: any, context: any, index?: number) => {
    if (isStandard(context)) {
      if (context.kind === 'field') return function (this: object) { return givenOf(this).process(name); };
      if (context.kind === 'accessor') {
        return { get(this: object) { return givenOf(this).process(name); }, set() { throw new TypeError(`${String(context.name)} is an injected process: it cannot be assigned`); } };
      }
      throw new TypeError(`@InjectProcess applies to fields and accessors (constructor parameters with experimentalDecorators), not to a ${context.kind}`);
    }
    if (typeof index === 'number') {
      if (context !== undefined || typeof proto !== 'function') throw new TypeError('@InjectProcess applies to constructor parameters, not to method parameters');
      record(proto, INJECT_PARAMS, [index, name]);
      return;
    }
    if (typeof proto !== 'object' || proto === null || (typeof context !== 'string' && typeof context !== 'symbol')) {
      throw new TypeError('@InjectProcess applies to properties and constructor parameters');
    }
    record(proto.constructor, INJECT, [context, name]);
  };
}

const sharedFields = new WeakMap<object, [string, unknown][]>();

/**
 * `@SharedState(initial?) count = 0`: one host-held value of this property for every instance of the
 * class under the manager. `initial` defaults to the field's initial value. Reading `this.count`
 * returns this instance's view; `this.count++` / `this.count += n` (any numeric write) is an
 * atomic add on the host; writing anything else is a set (last writer wins). For explicit
 * `get`/`set`/`add` operations, see `sharedValue(this, 'count')`.
 */
export function SharedState(initial?: unknown): any {
  return (proto: any, context: any) => {
    if (isStandard(context)) {
      if (context.kind !== 'field') throw new TypeError(`@SharedState applies to fields, not to a ${context.kind}`);
      const property = String(context.name);
      return function (this: object, value: unknown) {
        const start = initial !== undefined ? initial : value === undefined ? null : value;
        const list = sharedFields.get(this) ?? [];
        list.push([property, start]);
        sharedFields.set(this, list);
        return start;
      };
    }
    if (typeof proto !== 'object' || proto === null || typeof context !== 'string') throw new TypeError('@SharedState applies to properties');
    record(proto.constructor, SHARED, [context, initial]);
  };
}

/** The explicit operations on a @SharedState property of a worker instance: `await sharedValue(this, 'count').add(5)`. */
export function sharedValue<V = unknown>(instance: object, property: string): Shared<V> {
  const g = givenOf(instance);
  const view = (g as any).views.get(property) as SharedView | undefined;
  if (!view) throw new ConfigError(`${property} is not a @SharedState property of ${instance?.constructor?.name ?? 'this object'}`);
  return g.shared(property, view.initial as V);
}

function installShared(instance: any, given: Given, key: string, initial: unknown): void {
  const view = given.view(key, initial);
  Object.defineProperty(instance, key, { get: () => view.read(), set: (v) => view.write(v), configurable: true, enumerable: true });
}

/** Constructs a worker instance with `given` (constructor parameters, fields marked with experimental decorators). */
export function construct(cls: new (...args: any[]) => any, given: Given): any {
  const params: [number, string][] = (cls as any)[INJECT_PARAMS] ?? [];
  const args: unknown[] = [];
  for (const [i, name] of params) args[i] = given.process(name);
  constructing = given;
  let instance;
  try {
    instance = new cls(...args);
  } finally {
    constructing = undefined;
  }
  instances.set(instance, given);
  for (const [key, name] of ((cls as any)[INJECT] ?? []) as [string | symbol, string][]) {
    Object.defineProperty(instance, key, { get: () => given.process(name), configurable: true, enumerable: false });
  }
  for (const [key, initial] of ((cls as any)[SHARED] ?? []) as [string, unknown][]) {
    const own = Object.getOwnPropertyDescriptor(instance, key);
    installShared(instance, given, key, initial !== undefined ? initial : own && 'value' in own && own.value !== undefined ? own.value : null);
  }
  for (const [key, initial] of sharedFields.get(instance) ?? []) installShared(instance, given, key, initial);
  return instance;
}
