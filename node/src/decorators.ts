// The worker-side decorators: @Process marks a class as a worker, @Public (or
// @Method) its callable methods, @HealthCheck and @OnShutdown its hooks.
//
// They work under TypeScript's standard (TC39) decorators and under
// `experimentalDecorators`: each marks the function or class it is given with
// a global symbol (so two copies of titan-pm, or an ESM and a CJS one, agree),
// and `definitionOf` reads the marks back from the class and its prototypes.

const PROCESS = Symbol.for('titan-pm.process');
const ROLE = Symbol.for('titan-pm.role');

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
  readonly onShutdown: readonly string[];
}

/** A decorator that works as a standard and as an experimental method decorator. */
export type MethodMarker = (target: any, context: any, descriptor?: any) => any;
/** A decorator that works as a standard and as an experimental class decorator. */
export type ClassMarker = (target: any, context?: any) => any;

function isStandard(context: unknown): context is { kind: string; name: string | symbol } {
  return typeof context === 'object' && context !== null && 'kind' in context;
}

function mark(role: Role, decorator: string): MethodMarker {
  return (target: any, context: any, descriptor?: PropertyDescriptor) => {
    const fn = isStandard(context) ? target : descriptor?.value;
    const kind = isStandard(context) ? context.kind : typeof fn;
    if (typeof fn !== 'function' || (isStandard(context) && context.kind !== 'method')) {
      throw new TypeError(`${decorator} applies to methods, not to a ${kind}`);
    }
    Object.defineProperty(fn, ROLE, { value: role, configurable: true });
  };
}

/** Marks a class as a worker: `@Process({ name: 'calculator', version: '1.0.0' })`. */
export function Process(options: ProcessOptions): ClassMarker {
  if (!options || typeof options.name !== 'string' || options.name === '') {
    throw new TypeError('@Process needs a name: @Process({ name: "calculator" })');
  }
  const frozen = Object.freeze({ version: '0.0.0', ...options });
  return (target: any, context?: any) => {
    if (typeof target !== 'function' || (isStandard(context) && context.kind !== 'class')) {
      throw new TypeError('@Process applies to classes');
    }
    Object.defineProperty(target, PROCESS, { value: frozen, configurable: true });
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

/** Marks the method that answers health probes: returns `{ status, checks? }` or a status string. */
export function HealthCheck(): MethodMarker {
  return mark('health', '@HealthCheck()');
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
  const seen = new Set<string>();
  for (let proto = cls.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (seen.has(key) || key === 'constructor') continue;
      seen.add(key);
      const fn = Object.getOwnPropertyDescriptor(proto, key)?.value;
      const role = typeof fn === 'function' ? (fn as any)[ROLE] as Role | undefined : undefined;
      if (role === 'public') methods.push(key);
      else if (role === 'health') healthCheck ??= key;
      else if (role === 'shutdown') onShutdown.push(key);
    }
  }
  return Object.freeze({ name: options.name, version: String(options.version ?? '0.0.0'), options, methods, healthCheck, onShutdown });
}
