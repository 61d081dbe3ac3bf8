// The host API: `ProcessManager` spawns workers and hands back typed proxies,
// forwards lifecycle events to its EventEmitter, and runs the JS runtimes of
// in-process workers (a worker thread for isolation `worker`, this thread for
// `none`) that the native core asks for. Everything else is the core's.
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';

import { native } from './binding';
import { processRefs } from './given';
import { ControlServer } from './control';
import { definitionOf, ProcessDefinition } from './decorators';
import { ConfigError, rethrow, signalName, spawnError } from './errors';
import { makePoolProxy, makeProxy, PoolState } from './proxy';
import type {
  ListenOptions,
  HealthReport,
  Isolation,
  ManagerConfig,
  OutputCallback,
  OutputOption,
  PoolOptions,
  PoolProxy,
  ProcessInfo,
  ProcessMetrics,
  ProcessProxy,
  SpawnOptions,
} from './types';
import { Description, LoadError, Runtime } from './worker/runtime';
import { loadWorkflow, RunSummary, WorkflowHandle } from './workflow';
import { loadSupervisorClass, SupervisorHandle, supervisorTree } from './supervisor';

/** The worker runtime's entry: a worker thread's script, and a child's via TITAN_NODE_WORKER. */
const WORKER_ENTRY = path.join(__dirname, 'worker', 'main.js');
const JS_FILE = /\.(c|m)?[jt]s$/;

type NativeManager = InstanceType<typeof native.NativeManager>;
/** A @Process class, spawned by reference. */
export type WorkerClass<T> = new (...args: any[]) => T;
type ProcessRef = number | { readonly __processId: number };

const idOf = (p: ProcessRef) => (typeof p === 'number' ? p : p.__processId);

/** Internal: makes the manager `titan-pm/testing`'s (the core's test manager options and `test*` methods). */
export const TEST_MANAGER = Symbol('titan-pm test manager');
/** Internal: each manager's native side, for `titan-pm/testing`. */
export const nativeOf = new WeakMap<ProcessManager, NativeManager>();

export class ProcessManager extends EventEmitter {
  readonly #config: ManagerConfig;
  readonly #native: NativeManager;
  /** In-process runtimes by slot: a worker thread, or null for one on this thread. */
  readonly #runtimes = new Map<number, Worker | null>();
  readonly #pools = new Map<number, PoolState>();
  /** Output callbacks by the number the native side knows them by. */
  readonly #outputs = new Map<number, OutputCallback>();
  /** @Process classes spawned with isolation `none`, by their target string. */
  readonly #classes = new Map<string, WorkerClass<unknown>>();
  readonly #classKeys = new WeakMap<WorkerClass<unknown>, string>();
  /**
   * A worker thread started ahead for the next in-process worker: the runtime and the addon
   * loaded, no worker file yet (worker/main.ts `standby`). Made once this manager's first
   * worker thread is ready, and again each time one is taken (by the next worker thread with
   * piped output and no heap limit); ended by `shutdown`.
   */
  #standby: { worker: Worker; gone: () => void; ready: boolean } | undefined;
  #closed = false;

  constructor(config: ManagerConfig = {}, mode?: typeof TEST_MANAGER) {
    super();
    this.#config = { ...config };
    const output = this.#outputOption(config.output);
    try {
      const onMessage = (kind: string, ...args: any[]) => this.#onMessage(kind, args);
      this.#native = new native.NativeManager({ ...config, output }, onMessage, mode === TEST_MANAGER);
    } catch (e) {
      rethrow(e);
    }
    nativeOf.set(this, this.#native);
  }

  /**
   * Spawns `target` and waits until it is ready: a compiled .js/.mjs/.cjs worker, a .py worker or an
   * executable, or a @Process class (isolation `none` runs it on this thread; `worker` loads its module
   * file in a worker thread). Options go to the core as given: an unknown one is a ConfigError naming it.
   */
  async spawn<T = any>(target: string | WorkerClass<T>, options: SpawnOptions = {}): Promise<ProcessProxy<T>> {
    const isolation: Isolation = options.isolation ?? this.#config.isolation ?? 'worker';
    const file = this.#target(target, isolation);
    const nativeOptions = { ...options, isolation, output: this.#outputOption(options.output), ...processRefs(options.dependencies) };
    if (!this.#inProcess(target, file, isolation)) {
      // The core runs the file (or says why it cannot run it in-process).
      nativeOptions.env = { ...options.env, TITAN_NODE_WORKER: WORKER_ENTRY };
      const id = await this.#native.spawnPath(file, nativeOptions).catch(rethrow);
      return makeProxy<T>(this.#native, id);
    }
    const heapLimit = this.#heapLimit('spawn', nativeOptions);
    const slot = native.newSlot();
    try {
      // The core's spawn starts as the runtime attaches, on the worker's thread (no hop through
      // this one); a runtime that cannot load fails both, and its LoadError is the one reported.
      const started = this.#startRuntime(slot, file, isolation, options.output, heapLimit);
      const spawned = this.#native.spawnSlot(slot, file, nativeOptions) as Promise<number>;
      spawned.catch(() => undefined);
      await started;
      const id = await spawned.catch(rethrow);
      return makeProxy<T>(this.#native, id);
    } catch (e) {
      native.releaseSlot(slot);
      this.#stopRuntime(slot);
      throw e instanceof LoadError ? spawnError(file, e.message) : e;
    }
  }

  /**
   * Listens for remote workers (`titan-pm-worker --connect ...`, `python -m titan_pm.worker --connect ...`,
   * a Rust worker's `.run()`): `tls: {cert, key, ca}` (PEM paths; a worker must present a certificate
   * signed by `ca`), `token` (a join token; without tls only on a loopback address). Resolves to the bound
   * `ip:port`. Workers that join as NAME serve `pool('remote:NAME', {min})` and `attach('remote:NAME')`.
   */
  async listen(options: ListenOptions): Promise<string> {
    return (await this.#native.listen(options).catch(rethrow)) as string;
  }

  /** Where the HTTP gateway listens (`ip:port`), once `listen({gateway})` started one. */
  gatewayAddress(): string | undefined {
    return this.#native.gatewayAddress() ?? undefined;
  }

  /** One remote worker that joined (or joins within the spawn timeout) as `name` (`remote:api` or `api`). */
  async attach<T = any>(name: string, options: SpawnOptions = {}): Promise<ProcessProxy<T>> {
    const id = await this.#native.attach(name, options).catch(rethrow);
    return makeProxy<T>(this.#native, id);
  }

  /** Starts a pool of workers of `target` (a file or a @Process class, as for `spawn`); the core balances, queues, replaces and scales them. */
  async pool<T = any>(target: string | WorkerClass<T>, options: PoolOptions = {}): Promise<PoolProxy<T>> {
    if (typeof target === 'string' && target.startsWith('remote:')) {
      // Its members are the remote workers that joined under that name: nothing to load here.
      return this.#poolProxy<T>(await this.#native.pool(null, target, options).catch(rethrow));
    }
    const isolation: Isolation = options.isolation ?? this.#config.isolation ?? 'worker';
    const file = this.#target(target, isolation);
    const nativeOptions = { ...options, isolation, output: this.#outputOption(options.output), ...processRefs(options.dependencies) };
    let id: number;
    if (!this.#inProcess(target, file, isolation)) {
      nativeOptions.env = { ...options.env, TITAN_NODE_WORKER: WORKER_ENTRY };
      id = await this.#native.pool(null, file, nativeOptions).catch(rethrow);
    } else {
      const heapLimit = this.#heapLimit('pool', nativeOptions);
      const slot = native.newSlot();
      try {
        await this.#startRuntime(slot, file, isolation, options.output, heapLimit);
        id = await this.#native.pool(slot, file, nativeOptions).catch(rethrow);
      } catch (e) {
        native.releaseSlot(slot);
        this.#stopRuntime(slot);
        throw e instanceof LoadError ? spawnError(file, e.message) : e;
      }
    }
    return this.#poolProxy<T>(id);
  }

  /** The proxy of pool `id`, sharing its size and events with every other proxy of it. */
  async #poolProxy<T>(id: number): Promise<PoolProxy<T>> {
    let state = this.#pools.get(id);
    if (!state) {
      state = { size: (await this.#native.poolSize(id).catch(rethrow)) as number, events: new EventEmitter() };
      this.#pools.set(id, state);
    }
    return makePoolProxy<T>(this.#native, id, state);
  }

  /**
   * Starts a @Supervisor class (or the file that exports it as its default export): its children in declaration
   * order, each ready before the next; the core supervises them (Erlang/OTP semantics). Worker children run as
   * child processes (isolation `child`). The tree's options go to the core as given: an unknown one is a ConfigError naming its path.
   */
  async supervisor(target: string | Function): Promise<SupervisorHandle> {
    const cls = typeof target === 'string' ? await loadSupervisorClass(target) : target;
    const tree = supervisorTree(cls, (options) => ({
      ...options,
      isolation: options.isolation ?? 'child',
      env: { ...options.env, TITAN_NODE_WORKER: WORKER_ENTRY },
      output: this.#outputOption(options.output),
    }));
    const id = await this.#native.supervisorStart(tree).catch(rethrow);
    return new SupervisorHandle(this.#native, id, [], <T>(pool: number) => this.#poolProxy<T>(pool));
  }

  /**
   * The target string for a file or a @Process class: a class is `file:ClassName` (its module file, recorded
   * by @Process), or for isolation `none` a name this manager maps back to the class.
   */
  #target(target: string | WorkerClass<unknown>, isolation: Isolation): string {
    if (typeof target === 'string') return target;
    const def = definitionOf(target);
    if (!def) {
      const what = typeof target === 'function' ? `class ${target.name || '(anonymous)'}` : typeof target;
      throw new ConfigError(`spawn needs a file path or a @Process class, not ${what}`);
    }
    const fromFile = def.file && JS_FILE.test(def.file) ? `${def.file}:${target.name}` : undefined;
    if (isolation === 'none') {
      const cls = target as WorkerClass<unknown>;
      let key = this.#classKeys.get(cls);
      if (key === undefined) {
        key = fromFile ?? `<class ${target.name}#${this.#classes.size + 1}>`;
        this.#classKeys.set(cls, key);
        this.#classes.set(key, cls);
      }
      return key;
    }
    if (isolation === 'child') {
      const file = def.file ?? `the file that declares ${target.name}`;
      throw new ConfigError(
        `isolation 'child' runs a file, not a class: spawn the file (pm.spawn(${JSON.stringify(file)}, { isolation: 'child' })) with ${target.name} as its default export`,
      );
    }
    if (!fromFile) {
      throw new ConfigError(
        `isolation 'worker' needs the module file of class ${target.name}, which @Process could not tell: spawn the file instead, or use isolation 'none'`,
      );
    }
    return fromFile;
  }

  /** Whether this manager runs the target's JS runtime (a worker thread or this thread); else the core runs the file. */
  #inProcess(target: string | WorkerClass<unknown>, file: string, isolation: Isolation): boolean {
    if (typeof target !== 'string') return true; // #target refused `child` already
    return isolation !== 'child' && JS_FILE.test(file);
  }

  /** A worker thread's heap limit, bytes (`resources.maxMemory`); bad options throw the core's ConfigError here, before a thread starts. */
  #heapLimit(kind: 'spawn' | 'pool', options: object): number | null {
    try {
      return this.#native.heapLimit(kind, options);
    } catch (e) {
      return rethrow(e);
    }
  }

  /** The worker's own health check, answered out of band. */
  getHealth(process: ProcessRef): Promise<HealthReport> {
    return this.#native.getHealth(idOf(process)).catch(rethrow) as Promise<HealthReport>;
  }

  getMetrics(process: ProcessRef): Promise<ProcessMetrics> {
    return this.#native.getMetrics(idOf(process)).catch(rethrow) as Promise<ProcessMetrics>;
  }

  /**
   * Reloads `process` onto `target` (a file or a @Process class, as for `spawn`) with spawn `options`: the
   * new instance is ready before the old one finishes its calls and stops (no call fails); the id stays, and
   * later restarts use the new target and options. A target that cannot start leaves the old instance serving.
   */
  async restartWith<T = any>(process: ProcessRef, target: string | WorkerClass<T>, options: SpawnOptions = {}): Promise<void> {
    const id = idOf(process);
    const isolation: Isolation = options.isolation ?? this.#config.isolation ?? 'worker';
    const file = this.#target(target, isolation);
    const nativeOptions = { ...options, isolation, output: this.#outputOption(options.output), ...processRefs(options.dependencies) };
    if (!this.#inProcess(target, file, isolation)) {
      nativeOptions.env = { ...options.env, TITAN_NODE_WORKER: WORKER_ENTRY };
      await this.#native.restartWith(id, null, file, nativeOptions).catch(rethrow);
      return;
    }
    const heapLimit = this.#heapLimit('spawn', nativeOptions);
    const slot = native.newSlot();
    try {
      await this.#startRuntime(slot, file, isolation, options.output, heapLimit);
      await this.#native.restartWith(id, slot, file, nativeOptions).catch(rethrow);
    } catch (e) {
      native.releaseSlot(slot);
      this.#stopRuntime(slot);
      throw e instanceof LoadError ? spawnError(file, e.message) : e;
    }
  }

  /** Stops a process at once; not a crash, so it is not restarted. */
  kill(process: ProcessRef): Promise<void> {
    return this.#native.kill(idOf(process)).catch(rethrow);
  }

  /** Serves the control socket at `path` (else the default: see `ControlServer`), so the
   * `titan-pm` CLI's `ls`, `logs`, `restart`, `scale`, `monit` and `stop` reach this manager. */
  serveControl(path?: string): ControlServer {
    try {
      return new ControlServer(this.#native.serveControl(path));
    } catch (e) {
      return rethrow(e);
    }
  }

  listProcesses(): Promise<ProcessInfo[]> {
    return this.#native.listProcesses().catch(rethrow) as Promise<ProcessInfo[]>;
  }

  getProcess(process: ProcessRef): Promise<ProcessInfo> {
    return this.#native.getProcess(idOf(process)).catch(rethrow) as Promise<ProcessInfo>;
  }

  /** Loads a @Workflow class from its compiled file (its stages run where it is spawned: a worker
   * thread, this thread with isolation `none`, or a child), checks its stage graph (a cycle or an
   * unknown `dependsOn` is a ConfigError) and returns a handle: `await wf.run(input, { runId })`.
   * Options: spawn options, and `retryBackoff`, `retryJitter`, `compensationRetries`. */
  async workflow(target: string, options: SpawnOptions & { retryBackoff?: object; retryJitter?: number; compensationRetries?: number } = {}): Promise<WorkflowHandle> {
    const { retryBackoff, retryJitter, compensationRetries, ...spawnOptions } = options;
    const proxy = await this.spawn(target, spawnOptions);
    const id = proxy.__processId;
    try {
      return await loadWorkflow(this.#native, id, { retryBackoff, retryJitter, compensationRetries });
    } catch (e) {
      await this.kill(id).catch(() => undefined);
      throw e;
    }
  }

  /** The newest runs of the manager's workflow journal with their state. */
  workflowRuns(limit = 100): Promise<RunSummary[]> {
    return this.#native.workflowManagerRuns(limit).catch(rethrow) as Promise<RunSummary[]>;
  }

  /** Stops intake, drains in-flight calls, runs @OnShutdown hooks, then stops every worker. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    this.#dropStandby();
    await this.#native.shutdown().catch(rethrow);
    for (const slot of [...this.#runtimes.keys()]) this.#stopRuntime(slot);
  }

  #onMessage(kind: string, args: any[]): void {
    switch (kind) {
      case 'event':
        if (typeof args[1].signal === 'number') args[1].signal = signalName(args[1].signal);
        this.emit(args[0], args[1]);
        break;
      case 'start': // the core restarts an in-process worker
        this.#startRuntime(args[0], args[1], args[2], undefined, args[3]).catch((e) => native.attachFailed(args[0], String(e?.message ?? e)));
        break;
      case 'stop':
        this.#stopRuntime(args[0]);
        break;
      case 'pool': {
        const pool = this.#pools.get(args[0]);
        if (!pool) break;
        if (args[1] === 'pool:initialized') pool.size = args[2].size;
        if (args[1] === 'pool:scaled') pool.size = args[2].to;
        pool.events.emit(args[1], args[2]);
        if (args[1] === 'pool:destroyed') this.#pools.delete(args[0]);
        break;
      }
      case 'output':
        this.#outputs.get(args[0])?.(args[1], args[2], args[3], args[4]);
        break;
      case 'outputDropped': // lines for an output callback were dropped: its queue was full
        this.emit('output:dropped', { dropped: args[1] });
        break;
    }
  }

  /** Starts the JS runtime for `slot` and resolves with its description once it is attached. */
  async #startRuntime(slot: number, target: string, isolation: string, output: OutputOption | undefined, heapLimit: number | null): Promise<Description> {
    if (isolation === 'none') {
      const cls = this.#classes.get(target);
      const runtime = cls ? Runtime.of(cls as new () => any, definitionOf(cls) as ProcessDefinition) : await Runtime.load(target);
      native.attach(slot, runtime.description(), runtime.dispatch, true);
      this.#runtimes.set(slot, null);
      return runtime.description();
    }
    const mode = output ?? this.#config.output ?? 'prefix';
    const piped = mode !== 'inherit';
    const resourceLimits = heapLimit ? { maxOldGenerationSizeMb: Math.max(1, Math.ceil(heapLimit / 2 ** 20)) } : undefined;
    // A thread started ahead has piped output and no heap limit: it serves a worker that wants the same.
    const standby = piped && !resourceLimits;
    let worker: Worker;
    if (standby && this.#standby) {
      const ahead = this.#standby;
      this.#standby = undefined;
      worker = ahead.worker;
      worker.off('error', ahead.gone).off('exit', ahead.gone).removeAllListeners('message');
      worker.ref(); // as a new thread: it keeps the host alive until ready
      // It sees the host's environment as it is now, as a thread started now would.
      worker.postMessage({ titanSlot: slot, target, env: { ...process.env } });
      // The next one boots while this one loads its file (if this one is still booting, once it is ready).
      if (ahead.ready) this.#startStandby();
    } else {
      worker = new Worker(WORKER_ENTRY, { workerData: { titanSlot: slot, target }, stdout: piped, stderr: piped, resourceLimits });
    }
    this.#runtimes.set(slot, worker);
    const name = { current: path.basename(target).replace(/\.[^.]*$/, '') };
    if (piped) {
      this.#forward(slot, worker.stdout, 'stdout', name, mode);
      this.#forward(slot, worker.stderr, 'stderr', name, mode);
    }
    worker.on('error', (e) => {
      const line = `uncaught ${e?.stack ?? e}`;
      native.outputLine(slot, true, line);
      this.#line('stderr', name.current, line, mode);
    });
    worker.on('exit', (code) => {
      native.portClosed(slot, code);
      if (this.#runtimes.get(slot) === worker) this.#runtimes.delete(slot);
    });
    return new Promise<Description>((resolve, reject) => {
      worker.on('message', (m: { ok?: boolean; description: Description; message: string; titanOutputDropped?: number; titanStandbyReady?: true }) => {
        if (m && 'titanStandbyReady' in m) return; // it had booted (before it was taken)
        if (typeof m?.titanOutputDropped === 'number') {
          this.emit('output:dropped', { dropped: m.titanOutputDropped }); // its bounded stdout/stderr was full
          return;
        }
        worker.unref(); // a ready worker thread does not keep the host alive
        if (standby) setImmediate(() => this.#startStandby()); // unless one is booting already
        if (m.ok) {
          name.current = m.description.name;
          resolve(m.description);
        } else {
          reject(new LoadError(m.message));
        }
      });
      worker.once('exit', (code) => reject(new LoadError(`the worker thread exited (code ${code}) before it was ready`)));
    });
  }

  /** The native form of an output option: a callback becomes `callback:N`. */
  #outputOption(output: OutputOption | undefined): string | undefined {
    if (typeof output !== 'function') return output;
    const n = this.#outputs.size + 1;
    this.#outputs.set(n, output);
    return `callback:${n}`;
  }

  /** Starts the next worker thread ahead (see `#standby`), unless there is one or the manager is shut down. */
  #startStandby(): void {
    if (this.#standby || this.#closed) return;
    const worker = new Worker(WORKER_ENTRY, { workerData: { titanStandby: true }, stdout: true, stderr: true });
    worker.unref();
    const gone = () => {
      if (this.#standby?.worker === worker) this.#standby = undefined;
    };
    worker.on('error', gone).on('exit', gone);
    const ahead = { worker, gone, ready: false };
    worker.once('message', () => (ahead.ready = true)); // worker/main.ts `standby`: booted
    this.#standby = ahead;
  }

  #dropStandby(): void {
    const ahead = this.#standby;
    this.#standby = undefined;
    if (ahead) void ahead.worker.terminate();
  }

  #stopRuntime(slot: number): void {
    const worker = this.#runtimes.get(slot);
    this.#runtimes.delete(slot);
    if (worker) void worker.terminate();
  }

  /** Each line of a worker thread's stream goes to its process's log ring (`titan-pm logs`), then out as `mode` says. */
  #forward(slot: number, stream: NodeJS.ReadableStream | null, which: 'stdout' | 'stderr', name: { current: string }, mode: OutputOption): void {
    if (!stream) return;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      native.outputLine(slot, which === 'stderr', line);
      this.#line(which, name.current, line, mode);
    });
  }

  #line(which: 'stdout' | 'stderr', name: string, line: string, mode: OutputOption): void {
    if (typeof mode === 'function') mode(which, name, process.pid, line);
    else if (mode !== 'ignore') (which === 'stdout' ? process.stdout : process.stderr).write(`[${name}:${process.pid}] ${line}\n`);
  }
}

/** The same as `new ProcessManager(config)`. */
export function createProcessManager(config: ManagerConfig = {}): ProcessManager {
  return new ProcessManager(config);
}
