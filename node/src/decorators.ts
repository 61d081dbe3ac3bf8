// The worker-side decorators: @Process marks a class as a worker, @Public (or
// @Method) its callable methods, @HealthCheck and @OnShutdown its hooks.
//
// They work under TypeScript's standard (TC39) decorators and under
// `experimentalDecorators`: each marks the function or class it is given with
// a global symbol (so two copies of titan-pm, or an ESM and a CJS one, agree),
// and `definitionOf` reads the marks back from the class and its prototypes.
// @Process also records the file that declared the class (from the call
// stack), so `pm.spawn(SomeClass)` can load that file in a worker thread.
import * as path from 'node:path';

const PROCESS = Symbol.for('titan-pm.process');
const ROLE = Symbol.for('titan-pm.role');
const FILE = Symbol.for('titan-pm.file');
const HEALTH_INTERVAL = Symbol.for('titan-pm.health-interval');
/** titan-pm's own compiled files: never a worker class's file. */
const OWN_DIR = __dirname + path.sep;

type Role = 'public' | 'health' | 'shutdown';

export interface ProcessOptions {
  /** The worker's name, as processes and output prefixes show it. */
  name: string;
  version?: string;
  [option: string]: unknown;
}

/** What the worker runtime reads back from a decorated class. */
export interface ProcessDefinition {
  readonly name: string;
  readonly version: string;
  readonly options: Readonly<ProcessOptions>;
  readonly methods: readonly string[];
  readonly healthCheck?: string;
  /** `@HealthCheck({ interval })`: this class's probe interval, ms. */
  readonly healthInterval?: number;
  readonly onShutdown: readonly string[];
  /** The module file that declared the class, when @Process could tell. */
  readonly file?: string;
}

/** A decorator that works as a standard and as an experimental method decorator. */
export type MethodMarker = (target: any, context: any, descriptor?: any) => any;
/** A decorator that works as a standard and as an experimental class decorator. */
export type ClassMarker = (target: any, context?: any) => any;

export function isStandard(context: unknown): context is { kind: string; name: string | symbol } {
  return typeof context === 'object' && context !== null && 'kind' in context;
}

function mark(role: Role, decorator: string, extra?: (fn: Function) => void): MethodMarker {
  return (target: any, context: any, descriptor?: PropertyDescriptor) => {
    const fn = isStandard(context) ? target : descriptor?.value;
    const kind = isStandard(context) ? context.kind : typeof fn;
    if (typeof fn !== 'function' || (isStandard(context) && context.kind !== 'method')) {
      throw new TypeError(`${decorator} applies to methods, not to a ${kind}`);
    }
    Object.defineProperty(fn, ROLE, { value: role, configurable: true });
    extra?.(fn);
  };
}

/** The file of the first caller outside titan-pm (and outside a decorator helper library). */
export function callerFile(): string | undefined {
  const { prepareStackTrace, stackTraceLimit } = Error;
  try {
    Error.stackTraceLimit = 30;
    Error.prepareStackTrace = (_e, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[];
    for (const frame of frames) {
      let file = frame.getFileName() ?? '';
      if (file.startsWith('file://')) file = (require('node:url') as typeof import('node:url')).fileURLToPath(file);
      if (!path.isAbsolute(file) || file.startsWith(OWN_DIR)) continue;
      if (/[\\/]node_modules[\\/](tslib|@swc[\\/]helpers|@babel[\\/]runtime)[\\/]/.test(file)) continue;
      return file;
    }
  } catch {
    // No structured stack here: the file stays unknown.
  } finally {
    Error.prepareStackTrace = prepareStackTrace;
    Error.stackTraceLimit = stackTraceLimit;
  }
  return undefined;
}


/** Marks a class as a worker: `@Process({ name: 'calculator', version: '1.0.0' })`. */
export function Process(options: ProcessOptions): ClassMarker {
  if (!options || typeof options.name !== 'string' || options.name === '') {
    throw new TypeError('@Process needs a name: @Process({ name: "calculator" })');
  }
  const frozen = Object.freeze({ version: '0.0.0', ...options });
  const file = callerFile();
  return (target: any, context?: any) => {
    if (typeof target !== 'function' || (isStandard(context) && context.kind !== 'class')) {
      throw new TypeError('@Process applies to classes');
    }
    Object.defineProperty(target, PROCESS, { value: frozen, configurable: true });
    Object.defineProperty(target, FILE, { value: file, configurable: true });
  };
}

/** Marks a method callable by the host. */
export function Public(): MethodMarker {
  return mark('public', '@Public()');
}

/** An alias of `@Public()`. */
export function Method(): MethodMarker {
  return mark('public', '@Method()');
}

/** `@HealthCheck({ interval })`: how often the manager probes this class, ms (default: the manager's `monitoring.healthCheck`). */
export interface HealthCheckOptions {
  interval?: number;
}

/**
 * Marks the method that answers health probes: returns `{ status?, checks?: [{ name, status: 'pass'|'warn'|'fail', message }] }`
 * or a status string; without `status` it is derived (any fail → unhealthy, any warn → degraded).
 */
export function HealthCheck(options: HealthCheckOptions = {}): MethodMarker {
  const interval = options?.interval;
  if (interval !== undefined && !(typeof interval === 'number' && Number.isFinite(interval) && interval > 0)) {
    throw new TypeError(`@HealthCheck({ interval }) must be a number of ms above 0, not ${String(interval)}`);
  }
  return mark('health', '@HealthCheck()', (fn) => Object.defineProperty(fn, HEALTH_INTERVAL, { value: interval, configurable: true }));
}

/** Marks a method run when the worker is shut down gracefully (awaited, in order). */
export function OnShutdown(): MethodMarker {
  return mark('shutdown', '@OnShutdown()');
}

/** The definition of a @Process class, or undefined if `cls` is not one. */
export function definitionOf(cls: unknown): ProcessDefinition | undefined {
  if (typeof cls !== 'function') return undefined;
  const options = (cls as any)[PROCESS] as ProcessOptions | undefined;
  if (!options) return undefined;
  const methods: string[] = [];
  const onShutdown: string[] = [];
  let healthCheck: string | undefined;
  let healthInterval: number | undefined;
  const seen = new Set<string>();
  for (let proto = cls.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (seen.has(key) || key === 'constructor') continue;
      seen.add(key);
      const fn = Object.getOwnPropertyDescriptor(proto, key)?.value;
      const role = typeof fn === 'function' ? (fn as any)[ROLE] as Role | undefined : undefined;
      if (role === 'public') methods.push(key);
      else if (role === 'health' && healthCheck === undefined) {
        healthCheck = key;
        healthInterval = (fn as any)[HEALTH_INTERVAL];
      }
      else if (role === 'shutdown') onShutdown.push(key);
    }
  }
  const file = (cls as any)[FILE] as string | undefined;
  return Object.freeze({ name: options.name, version: String(options.version ?? '0.0.0'), options, methods, healthCheck, healthInterval, onShutdown, file });
}
