// The JS side of a worker, wherever it runs (a worker thread, the host's main
// thread, a child process): loads the target file, checks it exports a
// @Process class, and answers the agent's requests (init, call, cancel,
// health, shutdown) through `dispatch`, replying with `settle` or `fail`.
//
// A method gets an AbortSignal when it declares more parameters than the call
// passes: the signal goes in its last declared parameter, and fires when the
// host cancels the call (its deadline passed).
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { CALL, CANCEL, EXIT, HEALTH, INIT, REPLY, SHUTDOWN, native } from '../binding';
import { definitionOf, ProcessDefinition } from '../decorators';
import { policiesOf, workerPoliciesOf } from '../policies';
import { argRefs, construct, Given, givenRefs } from '../given';
import { runInTrace } from '../trace';
import { Layers } from './layers';

/** What the core's `Description::from_value` reads (`healthInterval` in ms). */
export interface Description {
  name: string;
  version: string;
  /** A name, or with its policies (../policies.ts) `{ name, policies }`. */
  methods: (string | { name: string; policies: Record<string, unknown> })[];
  runtime: 'node';
  hasHealthCheck: boolean;
  healthInterval?: number;
  workflow?: unknown;
}

/** Why a worker file cannot be served; the message is what users see. */
export class LoadError extends Error {}

function describeValue(v: unknown): string {
  if (typeof v === 'function') return v.name ? `class ${v.name}` : 'an anonymous function';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** A CommonJS file is required (faster to start); an ES module is imported. */
async function importFile(file: string): Promise<any> {
  if (!file.endsWith('.mjs')) {
    try {
      return { default: require(file) };
    } catch (e: any) {
      if (e?.code !== 'ERR_REQUIRE_ESM') throw e;
    }
  }
  return import((require('node:url') as typeof import('node:url')).pathToFileURL(file).href);
}

/** `file.js:ClassName` names one exported @Process class of a file (as `pm.spawn(SomeClass)` does). */
function splitTarget(target: string): [string, string | undefined] {
  const i = target.lastIndexOf(':');
  if (i > 0 && !existsSync(target) && /^[A-Za-z_$][\w$]*$/.test(target.slice(i + 1))) return [target.slice(0, i), target.slice(i + 1)];
  return [target, undefined];
}

/** The @Process class named `name` among a module's exports (default and named). */
function findExport(mod: any, name: string): unknown {
  const seen = new Set<unknown>();
  const look = (ns: any): unknown => {
    if (!ns || (typeof ns !== 'object' && typeof ns !== 'function') || seen.has(ns)) return undefined;
    seen.add(ns);
    for (const key of Object.keys(ns)) {
      const v = ns[key];
      if (typeof v === 'function' && v.name === name && definitionOf(v)) return v;
    }
    return typeof ns === 'function' && ns.name === name && definitionOf(ns) ? ns : undefined;
  };
  return look(mod) ?? look(mod.default) ?? look(mod.default?.default);
}

/** Loads `target` (a file, or `file:ClassName`) and returns its @Process class. */
export async function loadClass(spec: string): Promise<{ cls: new () => any; def: ProcessDefinition }> {
  const [target, className] = splitTarget(spec);
  const file = path.resolve(target);
  const base = path.basename(file);
  const ext = path.extname(file);
  if (ext === '.ts' || ext === '.mts' || ext === '.cts') {
    const js = target.slice(0, -ext.length) + ({ '.ts': '.js', '.mts': '.mjs', '.cts': '.cjs' } as Record<string, string>)[ext];
    throw new LoadError(`TypeScript cannot run directly: compile it and spawn ${js}`);
  }
  if (!existsSync(file)) throw new LoadError(`cannot read ${target}: no such file`);
  if (statSync(file).isDirectory()) throw new LoadError(`${target} is a directory, not a worker file`);
  let mod: any;
  try {
    mod = await importFile(file);
  } catch (e: any) {
    const where = e instanceof SyntaxError && typeof e.stack === 'string' ? `\n${e.stack}` : '';
    throw new LoadError(`cannot load ${base}: ${e?.name ?? 'Error'}: ${e?.message ?? e}${where}`);
  }
  if (className !== undefined) {
    const cls = findExport(mod, className);
    if (!cls) throw new LoadError(`${base} does not export a @Process class named ${className} (export it from its module)`);
    return { cls: cls as new () => any, def: definitionOf(cls) as ProcessDefinition };
  }
  let cls = mod.default;
  // CommonJS `exports.default = X` arrives as `{ default: X }`.
  if (cls && typeof cls === 'object' && 'default' in cls) cls = cls.default;
  if (cls === undefined || (typeof cls === 'object' && cls !== null)) {
    throw new LoadError(`${base} has no default export (export default the @Process class)`);
  }
  const def = definitionOf(cls);
  if (!def) {
    throw new LoadError(`the default export of ${base} is not a @Process class (found: ${describeValue(cls)})`);
  }
  return { cls, def };
}

interface ErrorReport {
  kind: 'remote' | 'methodNotFound' | 'init' | 'validation';
  type: string;
  message: string;
  stack: string;
  code?: string;
  available?: string[];
  /** With kind `validation`: [path, message] pairs (agent.rs makes the host's ValidationError of them). */
  failures?: [string, string][];
}

function report(e: unknown, kind: ErrorReport['kind'] = 'remote'): ErrorReport {
  // A worker-side validator's verdict (layers.ts), or a ValidationError a method threw itself.
  const failures = (e as any)?.name === 'ValidationError' ? (e as any).failures : undefined;
  if (kind === 'remote' && Array.isArray(failures)) {
    const pairs = failures.map((f: any): [string, string] => [String(f?.path ?? ''), String(f?.message ?? '')]);
    return { kind: 'validation', type: 'ValidationError', message: String((e as Error).message), stack: '', failures: pairs };
  }
  if (e instanceof Error || (typeof e === 'object' && e !== null && 'message' in e)) {
    const err = e as Error & { code?: unknown };
    return {
      kind,
      type: err.name || err.constructor?.name || 'Error',
      message: String(err.message),
      stack: typeof err.stack === 'string' ? err.stack : '',
      code: typeof err.code === 'string' ? err.code : undefined,
    };
  }
  return { kind, type: typeof e, message: String(e), stack: '' };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as any).then === 'function';
}

/** A call held until fewer than `max` calls run (its pool member's concurrency). */
interface Held {
  token: number;
  method: string;
  args: unknown[];
  trace: unknown;
  max: number;
}

/** One served instance of a @Process class. */
export class Runtime {
  private readonly publicMethods: Set<string>;
  private readonly controllers = new Map<number, AbortController>();
  /** Calls running now (every call counts, bounded or not). */
  private running = 0;
  /**
   * Calls that carry a bound (`maxRunning`, a pipelining pool member's concurrency) and
   * wait, in arrival order, until fewer than it run: the core hands them over at once
   * (agent.rs `gates_calls`) so the next call is already here when one ends. Bounded by
   * the sender: a pool sends a member at most `concurrency + pipeline` calls at once.
   */
  private readonly held: Held[] = [];
  private releasing = false;
  /** The worker-side layers (layers.ts) of the methods that declare some, built at their first call. */
  private readonly layers = new Map<string, Layers | null>();

  constructor(readonly instance: any, readonly def: ProcessDefinition, readonly given: Given = new Given()) {
    this.publicMethods = new Set(def.methods);
    // A circuit breaker's fallback need not be public: it is dispatched (the host calls it
    // while the breaker is open) but not described.
    for (const m of def.methods) {
      const fallback = (policiesOf(instance[m])?.circuitBreaker as { fallback?: string } | undefined)?.fallback;
      if (fallback && typeof instance[fallback] === 'function') this.publicMethods.add(fallback);
    }
  }

  static async load(target: string): Promise<Runtime> {
    const { cls, def } = await loadClass(target);
    return Runtime.of(cls, def);
  }

  /** An instance of a @Process class, served on this thread. */
  static of(cls: new () => any, def: ProcessDefinition): Runtime {
    // What the host hands over at INIT (../given.ts) is bound to the instance as it is made.
    const given = new Given();
    let instance;
    try {
      instance = construct(cls, given);
    } catch (e: any) {
      throw new LoadError(`cannot construct ${def.name}: ${e?.name ?? 'Error'}: ${e?.message ?? e}`);
    }
    return new Runtime(instance, def, given);
  }

  description(): Description {
    const { name, version, methods, healthCheck, healthInterval } = this.def;
    const described = methods.map((m) => {
      const policies = policiesOf(this.instance[m]);
      return policies ? { name: m, policies } : m;
    });
    // A @Workflow class's stage graph (workflow.ts) travels with the description.
    const workflow = this.instance?.constructor?.[Symbol.for('titan-pm.workflow')];
    return { name, version, methods: described, runtime: 'node', hasHealthCheck: healthCheck !== undefined, healthInterval, ...(workflow ? { workflow } : {}) };
  }

  /**
   * `extra`: a CALL's trace context; INIT's grant id (what the host handed over, ../given.ts);
   * a REPLY's ok flag (the outcome of a given process's call or a shared-state operation).
   */
  readonly dispatch = (kind: number, token: number, method: string | null, payload: any, extra?: any, maxRunning?: number): void => {
    const inst = this.instance;
    switch (kind) {
      case CALL: {
        const call: Held = { token, method: method as string, args: payload as unknown[], trace: extra, max: maxRunning ?? 0 };
        if (call.max > 0 && (this.running >= call.max || this.held.length > 0)) {
          this.held.push(call);
          return;
        }
        return this.start(call);
      }
      case REPLY:
        return this.given.settle(token, payload, extra === true);
      case CANCEL: {
        // A held call is dropped (the host no longer waits for it); a running one is told.
        const i = this.held.findIndex((h) => h.token === token);
        if (i >= 0) {
          this.held.splice(i, 1);
          return this.release();
        }
        this.controllers.get(token)?.abort(new Error('call cancelled by the host'));
        return;
      }
      case INIT: {
        if (typeof extra === 'number') this.given.grant = extra;
        // Process handles given as dependencies arrive as `{ $given: name }` (../given.ts).
        const deps = givenRefs(this.given, payload && typeof payload === 'object' ? Object.values(payload) : []);
        // Shared state is seeded and loaded before init runs (../given.ts).
        return this.run(token, () => this.given.loadShared().then(() => (typeof inst.init === 'function' ? inst.init(...deps) : undefined)), 'init');
      }
      case HEALTH:
        return this.run(token, () => inst[this.def.healthCheck as string]());
      case SHUTDOWN:
        return this.run(token, async () => {
          for (const hook of this.def.onShutdown) await inst[hook]();
          return null;
        });
      case EXIT:
        process.exit(typeof payload === 'number' ? payload : 0);
    }
  };

  /** Runs a call now; it counts as running until its reply is sent. */
  private start(c: Held): void {
    this.running++;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.running--;
      this.release();
    };
    try {
      runInTrace(c.trace as [string, string, string] | null, () => this.call(c.token, c.method, c.args, end));
    } catch (e) {
      // Before the method ran (a bad process handle among the arguments, say): the call fails, the slot frees.
      native.fail(c.token, report(e));
      end();
    }
  }

  /** Starts held calls, oldest first, while their bound leaves room. */
  private release(): void {
    if (this.releasing) return; // a call that ended inside `start` below: the loop goes on
    this.releasing = true;
    try {
      while (this.held.length > 0 && (this.held[0].max === 0 || this.running < this.held[0].max)) {
        this.start(this.held.shift() as Held);
      }
    } finally {
      this.releasing = false;
    }
  }

  private call(token: number, method: string, args: unknown[], end: () => void): void {
    args = argRefs(this.given, args); // process handles the host passed, given with the call
    const fn = this.publicMethods.has(method) ? this.instance[method] : undefined;
    if (typeof fn !== 'function') {
      native.fail(token, { kind: 'methodNotFound', type: 'MethodNotFoundError', message: method, stack: '', available: [...this.def.methods] });
      end();
      return;
    }
    let layers = this.layers.get(method);
    if (layers === undefined) {
      const spec = workerPoliciesOf(fn);
      layers = spec ? new Layers(spec) : null;
      this.layers.set(method, layers);
    }
    let callArgs = args;
    let done = end;
    if (fn.length > args.length) {
      const controller = new AbortController();
      this.controllers.set(token, controller);
      callArgs = [...args];
      while (callArgs.length < fn.length - 1) callArgs.push(undefined);
      callArgs.push(controller.signal);
      done = () => {
        this.controllers.delete(token);
        end();
      };
    }
    const invoke = () => fn.apply(this.instance, callArgs);
    const l = layers;
    this.run(token, l ? () => l.run(args, invoke) : invoke, 'remote', done);
  }

  /** Runs `work` and replies with its outcome; `done` runs once the reply is sent. */
  private run(token: number, work: () => unknown, kind: ErrorReport['kind'] = 'remote', done?: () => void): void {
    let result: unknown;
    try {
      result = work();
    } catch (e) {
      native.fail(token, report(e, kind));
      done?.();
      return;
    }
    if (!isThenable(result)) {
      try {
        native.settle(token, result);
      } finally {
        done?.();
      }
      return;
    }
    result.then(
      (v) => {
        try {
          native.settle(token, v);
        } finally {
          done?.();
        }
      },
      (e) => {
        native.fail(token, report(e, kind));
        done?.();
      },
    );
  }
}
