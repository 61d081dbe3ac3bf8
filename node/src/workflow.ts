// Workflows: @Workflow marks a class whose @Stage methods form a DAG, with
// @Compensate methods that undo stages (saga). The engine is the core's: stages
// whose dependencies are done run at once, each attempt has its own timeout,
// failures are retried with backoff and jitter, a stage that still fails runs
// the compensations, and every step is journaled so a run outlives its host.
//
// The decorators work under TypeScript's standard (TC39) decorators and under
// `experimentalDecorators`, like @Process: each marks the method it is given
// (public, plus its stage or compensation spec) with a global symbol, and
// @Workflow collects the marks into the class's stage graph, which the worker
// runtime describes to the host.
import { native } from './binding';
import { rethrow } from './errors';
import { ClassMarker, MethodMarker, Process } from './decorators';

const ROLE = Symbol.for('titan-pm.role');
const STAGE = Symbol.for('titan-pm.stage');
const COMPENSATE = Symbol.for('titan-pm.compensate');
/** Where @Workflow keeps a class's stage graph (read by the worker runtime). */
export const WORKFLOW = Symbol.for('titan-pm.workflow');

export interface StageOptions {
  /** The stage's name: the key of its result (defaults to the method's name). */
  name?: string;
  /** A stage name or a list of them. */
  dependsOn?: string | string[];
  /** Per attempt, ms; the attempt is cancelled when it passes. */
  timeout?: number;
  /** Attempts after the first (exponential backoff with jitter between them). */
  retries?: number;
  /** `false`: the stage runs alone. */
  parallel?: boolean;
}

export interface WorkflowClassOptions {
  name?: string;
  version?: string;
}

/** What a stage gets as its second argument (a compensation as its third). */
export interface StageContext {
  runId: string;
  stage: string;
  attempt: number;
  /** `runId/stage`: the same on every attempt and after a resume on another host. */
  idempotencyKey: string;
}

function isStandard(context: unknown): context is { kind: string; name: string | symbol } {
  return typeof context === 'object' && context !== null && 'kind' in context;
}

function markMethod(decorator: string, apply: (fn: any, name: string) => void): MethodMarker {
  return (target: any, context: any, descriptor?: PropertyDescriptor) => {
    const fn = isStandard(context) ? target : descriptor?.value;
    const name = isStandard(context) ? String(context.name) : String(context);
    if (typeof fn !== 'function' || (isStandard(context) && context.kind !== 'method')) {
      throw new TypeError(`${decorator} applies to methods`);
    }
    Object.defineProperty(fn, ROLE, { value: 'public', configurable: true });
    apply(fn, name);
  };
}

/** Marks a method as a stage: `@Stage({ name: 'charge-payment', dependsOn: 'reserve', timeout: 30_000, retries: 3 })`. */
export function Stage(options: StageOptions = {}): MethodMarker {
  const deps = options.dependsOn === undefined ? [] : Array.isArray(options.dependsOn) ? options.dependsOn : [options.dependsOn];
  if (!deps.every((d) => typeof d === 'string' && d !== '')) {
    throw new TypeError(`@Stage dependsOn must be a stage name or a list of them, not ${JSON.stringify(options.dependsOn)}`);
  }
  if (options.timeout !== undefined && !(typeof options.timeout === 'number' && options.timeout > 0)) {
    throw new TypeError(`@Stage timeout must be a positive number of ms, not ${options.timeout}`);
  }
  if (options.retries !== undefined && !(Number.isInteger(options.retries) && options.retries >= 0)) {
    throw new TypeError(`@Stage retries must be a whole number >= 0, not ${options.retries}`);
  }
  return markMethod('@Stage()', (fn, method) => {
    const spec: Record<string, unknown> = { name: options.name ?? method, dependsOn: deps, retries: options.retries ?? 0, parallel: options.parallel ?? true };
    if (options.timeout !== undefined) spec.timeout = options.timeout;
    Object.defineProperty(fn, STAGE, { value: spec, configurable: true });
  });
}

/** Marks the method that undoes stage `stage`: `(result, error, context)`. */
export function Compensate(stage: string): MethodMarker {
  if (typeof stage !== 'string' || stage === '') throw new TypeError('@Compensate needs the stage name: @Compensate("charge-payment")');
  return markMethod('@Compensate()', (fn) => Object.defineProperty(fn, COMPENSATE, { value: stage, configurable: true }));
}

/** Marks a class as a workflow (and a worker: @Process applies). The stage graph is checked when it is loaded. */
export function Workflow(options: WorkflowClassOptions = {}): ClassMarker {
  return (target: any, context?: any) => {
    if (typeof target !== 'function' || (isStandard(context) && context.kind !== 'class')) {
      throw new TypeError('@Workflow applies to classes');
    }
    const stages = new Map<string, Record<string, unknown>>();
    const compensations = new Map<string, string>();
    const chain: any[] = [];
    for (let proto = target.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) chain.unshift(proto);
    for (const proto of chain) {
      for (const key of Object.getOwnPropertyNames(proto)) {
        const fn = Object.getOwnPropertyDescriptor(proto, key)?.value;
        if (typeof fn !== 'function') continue;
        if (fn[STAGE]) stages.set(key, { ...fn[STAGE], method: key });
        if (fn[COMPENSATE]) compensations.set(fn[COMPENSATE], key);
      }
    }
    if (stages.size === 0) throw new TypeError(`@Workflow class ${target.name} has no @Stage methods`);
    const graph = Object.freeze({
      stages: [...stages.values()],
      compensations: [...compensations].map(([stage, method]) => ({ stage, method })),
    });
    Object.defineProperty(target, WORKFLOW, { value: graph, configurable: true });
    Process({ name: options.name ?? target.name, version: options.version ?? '0.0.0' })(target, context);
  };
}

export type WorkflowEventName =
  | 'workflow:started' | 'stage:started' | 'stage:completed' | 'stage:failed' | 'stage:retrying'
  | 'compensation:started' | 'compensation:completed' | 'workflow:completed' | 'workflow:failed';

export interface WorkflowEvent {
  type: WorkflowEventName;
  workflow: string;
  runId: string;
  stage?: string;
  [field: string]: unknown;
}

export interface RunSummary {
  runId: string;
  workflow: string;
  state: 'running' | 'compensating' | 'completed' | 'failed';
  created: number;
  updated: number;
  leaseOwner: string | null;
}

type NativeManager = InstanceType<typeof native.NativeManager>;
type NativeWorkflow = InstanceType<typeof native.NativeWorkflow>;

/** A loaded workflow: `await wf.run(input, { runId })`. */
export class WorkflowHandle {
  #listening = false;
  readonly #listeners = new Map<string, ((e: WorkflowEvent) => void)[]>();

  constructor(
    readonly __processId: number,
    private readonly manager: NativeManager,
    private readonly wf: NativeWorkflow,
  ) {}

  /** The stage names, in the order `run` reports them. */
  get stages(): string[] {
    return this.wf.stages();
  }

  /** Every stage's result by name. With a finished run's id, its stored result (or WorkflowError);
   * with an unfinished one (its host died), resumes it: completed stages are not run again. */
  run<R = Record<string, unknown>>(input?: unknown, options: { runId?: string } = {}): Promise<R> {
    return this.manager.workflowRun(this.wf, input ?? null, options.runId).catch(rethrow) as Promise<R>;
  }

  /** The newest runs of the journal with their state. */
  runs(limit = 100): Promise<RunSummary[]> {
    return this.manager.workflowRuns(this.wf, limit).catch(rethrow) as Promise<RunSummary[]>;
  }

  /** Calls `listener` for each run event named `event` (or `'*'`). */
  on(event: WorkflowEventName | '*', listener: (e: WorkflowEvent) => void): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener);
    this.#listeners.set(event, list);
    if (!this.#listening) {
      this.#listening = true;
      this.wf.subscribe();
      void this.#listen();
    }
    return this;
  }

  async #listen(): Promise<void> {
    for (;;) {
      const e = (await this.manager.workflowNextEvent(this.wf)) as WorkflowEvent | null;
      if (e === null) return;
      for (const l of [...(this.#listeners.get(e.type) ?? []), ...(this.#listeners.get('*') ?? [])]) l(e);
    }
  }
}

/** Loads a spawned workflow class (used by `ProcessManager.workflow`). */
export async function loadWorkflow(manager: NativeManager, processId: number, options: Record<string, unknown>): Promise<WorkflowHandle> {
  const wf = new native.NativeWorkflow();
  await manager.workflowLoad(wf, processId, options).catch(rethrow);
  return new WorkflowHandle(processId, manager, wf);
}
