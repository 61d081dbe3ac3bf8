// Every titan-pm error as an exported class deriving from TitanError, and the
// one mapping from the native binding's tagged errors (`titanClass`) to them.

export class TitanError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The method raised: `remoteType` is the remote error's class, `remoteStack` its stack. */
export class RemoteError extends TitanError {
  remoteType = '';
  remoteMessage = '';
  remoteStack = '';
  code?: string;
}

/** The worker died with the call in flight. `signal` is a name such as `'SIGKILL'`. */
export class ProcessCrashedError extends TitanError {
  processId = 0;
  exitCode: number | null = null;
  signal: string | null = null;
}

/** The process is failed (restart budget spent), killed or stopped: calls fail fast. */
export class ProcessFailedError extends TitanError {
  processId = 0;
  state = '';
}

/** The call's deadline passed; the worker was told to cancel it (its AbortSignal fired). */
export class CallTimeoutError extends TitanError {
  method = '';
  timeoutMs = 0;
}

/** No public method of that name; `available` lists the ones there are. */
export class MethodNotFoundError extends TitanError {
  method = '';
  available: string[] = [];
}

/** A value could not be sent; `path` names it, e.g. `args[1]["items"][3]`. */
export class SerializationError extends TitanError {
  path = '';
}

/** The worker could not start; `stderrTail` holds its last stderr lines. */
export class SpawnError extends TitanError {
  target = '';
  reason = '';
  stderrTail = '';
}

/** A pool's queue is full: back off. */
export class PoolBackpressureError extends TitanError {
  queueSize = 0;
}

/** A circuit breaker is open. */
export class CircuitOpenError extends TitanError {}

/** An option given to the manager is invalid. */
export class ConfigError extends TitanError {}

/** A workflow stage failed after its retries and the compensations ran: `stage`, `kind`
 * (`'timeout' | 'remote' | 'crash' | ...`), `cause` (the stage's own error), `compensations`. */
export class WorkflowError extends TitanError {
  workflow = '';
  runId = '';
  stage = '';
  kind = '';
  compensations: { stage: string; method: string; attempts: number; error: string | null }[] = [];
}

/** A method's rate limit refused the call (it did not run): retry after `retryAfter` ms. */
export class RateLimitError extends TitanError {
  retryAfter = 0;
}

/** The arguments failed the method's validation (it did not run): each failing path and why. */
export class ValidationError extends TitanError {
  failures: { path: string; message: string }[] = [];
}

const classes: Record<string, new (message: string) => TitanError> = {
  RemoteError,
  ProcessCrashedError,
  ProcessFailedError,
  CallTimeoutError,
  MethodNotFoundError,
  SerializationError,
  SpawnError,
  PoolBackpressureError,
  CircuitOpenError,
  ConfigError,
  WorkflowError,
  RateLimitError,
  ValidationError,
};

let signalNames: Map<number, string> | undefined;

/** `9` → `'SIGKILL'`. (node:os is loaded on first use: a worker thread starts without it.) */
export function signalName(n: number): string {
  const { constants } = require('node:os') as typeof import('node:os');
  signalNames ??= new Map(Object.entries(constants.signals).map(([name, n]) => [n as number, name]));
  return signalNames.get(n) ?? `SIG${n}`;
}

/**
 * How to send what the codec refuses (the binding names the value and its path; this says how
 * to convert it). A Map with string keys needs nothing: it travels as a plain object.
 */
const howToSend: [RegExp, string][] = [
  [/\ba Date instance cannot be sent\b.*$/, 'a Date cannot be sent: send date.toISOString() (or date.getTime()) and build the Date on the other side'],
  [/\ba Set instance cannot be sent\b.*$/, 'a Set cannot be sent: send [...set] (an array)'],
];

/** The exported class for an error from the binding; anything else is returned as is. */
export function fromNative(e: unknown): unknown {
  const tagged = e as { titanClass?: string; message: string; stack?: string; [k: string]: unknown };
  const cls = tagged && typeof tagged.titanClass === 'string' ? classes[tagged.titanClass] : undefined;
  if (!cls) return e;
  let message = tagged.message;
  if (cls === SerializationError) for (const [pattern, hint] of howToSend) message = message.replace(pattern, hint);
  const err = new cls(message) as TitanError & Record<string, unknown>;
  for (const [k, v] of Object.entries(tagged)) {
    if (k !== 'titanClass' && k !== 'message' && k !== 'stack') err[k] = v;
  }
  if (err instanceof ProcessCrashedError && typeof tagged.signal === 'number') {
    err.signal = signalName(tagged.signal);
  }
  if (err instanceof WorkflowError && err.cause) {
    err.cause = fromNative(err.cause);
  }
  if (err instanceof RemoteError && err.remoteStack) {
    err.stack = `${err.stack}\n--- remote stack ---\n${err.remoteStack}`;
  }
  return err;
}

/** Rethrows a binding error as its exported class. */
export function rethrow(e: unknown): never {
  throw fromNative(e);
}

/** A SpawnError raised by the Node host itself (a worker thread that cannot load its file). */
export function spawnError(target: string, reason: string, stderrTail = ''): SpawnError {
  const err = new SpawnError(`cannot spawn ${target}: ${reason}`);
  err.target = target;
  err.reason = reason;
  err.stderrTail = stderrTail;
  return err;
}
