// Supervisors (Erlang/OTP semantics, run by the core): @Supervisor marks a
// class whose @Child fields are its children, in declaration order; each
// field's value is a worker file (relative paths are taken from the file that
// declares the class) or another @Supervisor class (a tree).
//
//   @Supervisor({ strategy: SupervisionStrategy.ONE_FOR_ONE, maxRestarts: 3, window: 60_000 })
//   export default class App {
//     @Child({ critical: true }) database = './db.js';
//     @Child({ pool: { size: 4 } }) worker = './worker.js';
//     @Child() nested = OtherSupervisor;
//   }
//   const sup = await pm.supervisor(App);
//   await (await sup.child<Db>('database')).query('...');
//
// The decorators work under TypeScript's standard (TC39) decorators and under
// `experimentalDecorators`. Their options are read by the core when the
// decorator is applied (`checkOptions`: an unknown key or a bad strategy is a
// ConfigError naming it), and again, as one tree, by `pm.supervisor`. This
// module only collects the declaration and converts it; restarts, intensity,
// order and escalation are the core's. Worker children run as child processes.
import * as path from 'node:path';

import { native } from './binding';
import { callerFile, ClassMarker, definitionOf } from './decorators';
import { ConfigError, rethrow } from './errors';
import { makeProxy } from './proxy';
import type {
  ChildInfo,
  ChildOptions,
  PoolProxy,
  ProcessProxy,
  SupervisorEvent,
  SupervisorEventName,
  SupervisorOptions,
  SupervisorState,
} from './types';
export { SupervisionStrategy } from './types';

const SUPERVISOR = Symbol.for('titan-pm.supervisor');
const CHILDREN = Symbol.for('titan-pm.children');

// Standard decorators give a field decorator `context.metadata` only where
// `Symbol.metadata` exists (not yet in Node 20/22): the polyfill TypeScript's
// documentation gives. A class using @Child imports titan-pm first, so it is set
// before the class is defined.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for('Symbol.metadata');

/** A decorator that works as a standard and as an experimental field decorator. */
export type FieldMarker = (target: any, context: any, descriptor?: any) => any;

interface ChildDeclaration {
  readonly name: string;
  readonly options: Readonly<ChildOptions>;
}

interface SupervisorDeclaration {
  readonly options: Readonly<SupervisorOptions>;
  readonly children: readonly ChildDeclaration[];
  /** The module file that declared the class, when the decorator could tell. */
  readonly file?: string;
}

function isStandard(context: unknown): context is { kind: string; name: string | symbol; static?: boolean; private?: boolean; metadata?: any } {
  return typeof context === 'object' && context !== null && 'kind' in context;
}

/** Has the core read `options` as a `kind` declaration; its ConfigError names the option and the decorator. */
function check(kind: 'supervisor' | 'child', decorator: string, options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(`${decorator} options must be an object, not ${Array.isArray(options) ? 'an array' : options === null ? 'null' : typeof options}`);
  }
  // An output function is the manager's to number (see `pm.supervisor`); the core only needs to know there is one.
  const readable = typeof (options as ChildOptions).output === 'function' ? { ...options, output: 'ignore' } : options;
  try {
    native.checkOptions(kind, readable);
  } catch (e) {
    try {
      rethrow(e);
    } catch (err) {
      if (err instanceof Error) err.message = `${decorator}: ${err.message}`;
      throw err;
    }
  }
}

/** Marks a class as a supervisor: `@Supervisor({ strategy, maxRestarts, window, backoff })` (ms). */
export function Supervisor(options: SupervisorOptions = {}): ClassMarker {
  check('supervisor', '@Supervisor()', options);
  const frozen = Object.freeze({ ...options });
  const file = callerFile();
  return (target: any, context?: any) => {
    if (typeof target !== 'function' || (isStandard(context) && context.kind !== 'class')) {
      throw new TypeError('@Supervisor applies to classes');
    }
    const holder = isStandard(context) ? context.metadata : target.prototype;
    const children: ChildDeclaration[] = holder && Object.hasOwn(holder, CHILDREN) ? holder[CHILDREN] : [];
    const declaration: SupervisorDeclaration = Object.freeze({ options: frozen, children: Object.freeze([...children]), file });
    Object.defineProperty(target, SUPERVISOR, { value: declaration, configurable: true });
  };
}

/** Marks a field as a child: its value is a worker file or a @Supervisor class. Options: `critical`, `optional`,
 * `restart` (`permanent`, `transient`, `temporary`), `pool` (pool options), `inject`, and spawn options. */
export function Child(options: ChildOptions = {}): FieldMarker {
  check('child', '@Child()', options);
  const frozen = Object.freeze({ ...options });
  return (target: any, context: any, descriptor?: unknown) => {
    let holder: any;
    let name: string;
    if (isStandard(context)) {
      if (context.kind !== 'field' || context.static || context.private) {
        throw new TypeError(`@Child applies to public instance fields, not to a ${context.static ? 'static ' : ''}${context.private ? 'private ' : ''}${context.kind}`);
      }
      holder = context.metadata;
      if (!holder) throw new TypeError('@Child needs Symbol.metadata: import titan-pm before declaring the class');
      name = String(context.name);
    } else {
      if (typeof target !== 'object' || target === null || typeof context !== 'string' || descriptor !== undefined) {
        throw new TypeError('@Child applies to public instance fields');
      }
      holder = target;
      name = context;
    }
    if (!Object.hasOwn(holder, CHILDREN)) Object.defineProperty(holder, CHILDREN, { value: [], configurable: true });
    holder[CHILDREN].push(Object.freeze({ name, options: frozen }));
  };
}

function declarationOf(cls: unknown): SupervisorDeclaration | undefined {
  return typeof cls === 'function' && Object.hasOwn(cls, SUPERVISOR) ? (cls as any)[SUPERVISOR] : undefined;
}

/** Whether `cls` is a @Supervisor class. */
export function isSupervisor(cls: unknown): boolean {
  return declarationOf(cls) !== undefined;
}

/** How the manager turns a worker child's options into what the core runs (its output callback, its runtime). */
export type WorkerChildOptions = (options: Readonly<ChildOptions>) => Record<string, unknown>;

/** The value the core's supervisor reader takes: the class's options and its children, in declaration order. */
export function supervisorTree(cls: Function, worker: WorkerChildOptions): Record<string, unknown> {
  const declaration = declarationOf(cls);
  if (!declaration) throw new ConfigError(`${cls?.name || 'the value'} is not a @Supervisor class`);
  let instance: any;
  try {
    instance = new (cls as new () => unknown)();
  } catch (e) {
    throw new ConfigError(`cannot construct @Supervisor class ${cls.name} to read its @Child fields: ${(e as Error)?.message ?? e}`);
  }
  const here = declaration.file ? path.dirname(declaration.file) : process.cwd();
  const children = declaration.children.map(({ name, options }) => {
    const value = instance[name];
    if (declarationOf(value)) return { name, target: supervisorTree(value, worker), ...options };
    if (typeof value === 'string' || value instanceof URL) {
      const file = value instanceof URL ? (require('node:url') as typeof import('node:url')).fileURLToPath(value) : value;
      return { name, target: path.isAbsolute(file) ? file : path.resolve(here, file), ...worker(options) };
    }
    const what = definitionOf(value)
      ? `@Process class ${value.name} (a worker child runs in a child process: give its file, with the class as the default export)`
      : typeof value === 'function'
        ? `class ${value.name || '(anonymous)'}`
        : String(value === null ? 'null' : typeof value);
    throw new ConfigError(`child ${name} of ${cls.name} must be a worker file or a @Supervisor class, not ${what}`);
  });
  return { name: cls.name, ...declaration.options, children };
}

/** The @Supervisor class a module file exports (default export, or the module itself). */
export async function loadSupervisorClass(file: string): Promise<Function> {
  const mod: any = await import((require('node:url') as typeof import('node:url')).pathToFileURL(path.resolve(file)).href).catch((e) => {
    throw new ConfigError(`cannot load supervisor file ${file}: ${e?.message ?? e}`);
  });
  for (const candidate of [mod?.default, mod?.default?.default, mod]) {
    if (declarationOf(candidate)) return candidate;
  }
  throw new ConfigError(`${file} does not export a @Supervisor class (as its default export)`);
}

type NativeManager = InstanceType<typeof native.NativeManager>;
type NativeEvents = InstanceType<typeof native.NativeSupervisorEvents>;

/** A running supervisor (or a nested one). Handles to its children survive their restarts. */
export class SupervisorHandle {
  #events?: NativeEvents;
  readonly #listeners = new Map<string, ((e: SupervisorEvent) => void)[]>();

  constructor(
    private readonly manager: NativeManager,
    /** The top-level supervisor's id. */
    readonly supervisorId: number,
    /** Child names from the top-level supervisor down to this one. */
    readonly path: readonly string[],
    private readonly poolProxy: <T>(id: number) => Promise<PoolProxy<T>>,
  ) {}

  /** The worker child `name`. */
  async child<T = any>(name: string): Promise<ProcessProxy<T>> {
    const id = await this.manager.supervisorChild(this.supervisorId, [...this.path], name).catch(rethrow);
    return makeProxy<T>(this.manager, id);
  }

  /** The pool child `name`. */
  async pool<T = any>(name: string): Promise<PoolProxy<T>> {
    const id = await this.manager.supervisorPool(this.supervisorId, [...this.path], name).catch(rethrow);
    return this.poolProxy<T>(id);
  }

  /** The nested supervisor child `name`. */
  supervisor(name: string): SupervisorHandle {
    return new SupervisorHandle(this.manager, this.supervisorId, [...this.path, name], this.poolProxy);
  }

  /** `running`, `failed` (it gave up) or `stopped`. */
  state(): Promise<SupervisorState> {
    return this.manager.supervisorState(this.supervisorId, [...this.path]).catch(rethrow) as Promise<SupervisorState>;
  }

  /** Every child, in declaration order: `{ name, kind, state, restarts, processId, processIds }`. */
  children(): Promise<ChildInfo[]> {
    return this.manager.supervisorChildren(this.supervisorId, [...this.path]).catch(rethrow) as Promise<ChildInfo[]>;
  }

  /** Adds a child from a simple-one-for-one supervisor's template; `args` are laid over its `dependencies`. */
  async startChild<T = any>(args: Record<string, unknown> = {}): Promise<ProcessProxy<T>> {
    const id = await this.manager.supervisorStartChild(this.supervisorId, [...this.path], args).catch(rethrow);
    return makeProxy<T>(this.manager, id);
  }

  /** Stops the children in reverse declaration order; the state becomes `stopped`. */
  stop(): Promise<void> {
    return this.manager.supervisorStop(this.supervisorId, [...this.path]).catch(rethrow);
  }

  /** Calls `listener` for each event named `event` (or `'*'`) from now on. Listening does not keep the
   * process alive, and ends when the manager is shut down. Resolves once listening. */
  async on(event: SupervisorEventName | '*', listener: (e: SupervisorEvent) => void): Promise<this> {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener);
    this.#listeners.set(event, list);
    if (!this.#events) {
      const events = new native.NativeSupervisorEvents();
      this.#events = events;
      await this.manager.supervisorSubscribe(events, this.supervisorId, [...this.path]).catch(rethrow);
      void this.#listen(events);
    }
    return this;
  }

  async #listen(events: NativeEvents): Promise<void> {
    for (;;) {
      const e = (await this.manager.supervisorNextEvent(events)) as SupervisorEvent | null;
      if (e === null) return;
      for (const l of [...(this.#listeners.get(e.type) ?? []), ...(this.#listeners.get('*') ?? [])]) l(e);
    }
  }
}
