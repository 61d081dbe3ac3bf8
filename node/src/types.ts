// The public option and result types of the host API (durations in ms), and
// the PoolStrategy and SupervisionStrategy names. Every option here is one the core's schema accepts
// (test/options-schema.test.js fails on drift, both ways).

export type Isolation = 'worker' | 'child' | 'none';
/** How a child reaches its host: an inherited socket, a Unix socket, loopback TCP or a WebSocket on loopback (`http`). */
export type Transport = 'ipc' | 'unix' | 'tcp' | 'http';
export type ProcessState = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

/** Called with each line a worker writes, instead of printing it. */
export type OutputCallback = (stream: 'stdout' | 'stderr', name: string, pid: number, line: string) => void;
/** Worker output: `prefix` (default: `[name:pid] line` on the host's stdout/stderr), `inherit`, `ignore`, or a callback (per manager or per spawn). */
export type OutputOption = 'prefix' | 'inherit' | 'ignore' | OutputCallback;

/** A duration in ms, or a string such as `'30s'`, `'250ms'`, `'5m'`. */
export type Duration = number | string;

/** The wait before each restart: `linear` waits `initial × n` before the n-th, `exponential` `initial × multiplier^(n-1)`; both capped at `max`. */
export interface Backoff {
  /** Default `exponential`. */
  type?: 'linear' | 'exponential';
  /** ms (default 100). */
  initial?: Duration;
  /** ms (default 30 000). */
  max?: Duration;
  /** The exponential factor (default 2). */
  multiplier?: number;
}

export interface RestartPolicy {
  /** `false` turns restarts off. */
  enabled?: boolean;
  /** Restarts allowed within `window` (default 3). */
  maxRestarts?: number;
  /** ms (default 60 000). */
  window?: Duration;
  /** The seed's backoff object, or a bare duration: the initial wait. */
  backoff?: Backoff | Duration;
  /** Alias of `backoff.initial`. */
  initialBackoff?: Duration;
  /** Alias of `backoff.max`. */
  maxBackoff?: Duration;
  /** Alias of `backoff.multiplier`. */
  multiplier?: number;
}

export interface Resources {
  /** Bytes, or a size such as `'512MB'`/`'1GB'`: a child worker above it is restarted (event `memory`); a worker thread gets it as its heap limit. */
  maxMemory?: number | string;
  /** Percent of one core; enforced where the OS allows it (see the README). */
  maxCpu?: number;
  /** Every call's default deadline, ms (default 30 000); the flat `timeout` is an alias. */
  timeout?: Duration;
}

export interface Monitoring {
  /** Periodic health probes: `true` (every 30 s) or `{ interval, timeout }` in ms; 3 unhealthy answers in a row restart the worker (event `unhealthy`). */
  healthCheck?: boolean | { enabled?: boolean; interval?: Duration; timeout?: Duration };
  /** Default true. */
  metrics?: boolean;
  /** Default false. With an `endpoint`, `@Trace` spans are exported over OTLP/HTTP (see the README's tracing section). */
  tracing?:
    | boolean
    | {
        enabled?: boolean;
        /** An OTLP/HTTP collector: `http://localhost:4318` (gets `/v1/traces`) or a full traces URL; plain http. */
        endpoint?: string;
        /** Default `http/protobuf`. */
        protocol?: 'http/protobuf' | 'http/json';
        /** The resource's `service.name` (default `titan-pm`). */
        serviceName?: string;
        headers?: Record<string, string>;
        /** One export's deadline, ms (default 10 000). */
        timeout?: Duration;
      };
}

export interface ManagerConfig {
  /** Default `worker` (a worker thread). */
  isolation?: Isolation;
  /** Default `ipc`. */
  transport?: Transport;
  /** Alias of `resources.timeout`. */
  timeout?: Duration;
  resources?: Resources;
  monitoring?: Monitoring;
  /** How long a worker has to start and run `init`, ms (default 10 000). */
  spawnTimeout?: Duration;
  /** Alias of `monitoring.healthCheck.timeout`: a health probe slower than this reports unhealthy, ms (default 5 000). */
  healthTimeout?: Duration;
  /** Each step of `shutdown` (drain, hooks, SIGTERM) waits at most this long, ms (default 5 000). */
  shutdownTimeout?: Duration;
  /** How long a timed-out call's worker has to confirm the cancel before it is recycled, ms (default 2 000). */
  cancelGrace?: Duration;
  /** `false` disables restarts. */
  restartPolicy?: RestartPolicy | boolean;
  output?: OutputOption;
  /** The interpreter for `.py` targets (default `python3`). */
  python?: string;
  /** The runtime for `.js` targets run as child processes (default `node`). */
  node?: string;
  /** The address the `tcp` transport listens on (default 127.0.0.1). */
  tcpHost?: string;
  /** How long the core's engine thread keeps polling after a job, ms (default 0: off): CPU spent to save a thread wake-up per call, which measured no better and hurt p99 when cores are scarce. */
  spin?: Duration;
  /** Where workflow runs are journaled: a SQLite file, a `postgresql://` URL, or `':memory:'` (the default: this process only); `lease` in ms. */
  workflows?: { journal?: string; lease?: Duration };
  /** Start `.py` children from a pre-imported Python fork server (default true); `false` starts a fresh interpreter each time. */
  forkServer?: boolean;
}

export interface SpawnOptions {
  isolation?: Isolation;
  transport?: Transport;
  /**
   * Passed to the worker's `init(...)`, values in key order. A process or pool proxy among them is
   * given to the worker (the sidecar pattern): `init` receives a `GivenProcess` it can call.
   */
  dependencies?: Record<string, unknown>;
  env?: Record<string, string>;
  args?: string[];
  name?: string;
  /** The version the worker's `@Process` must declare; a mismatch is a SpawnError. */
  version?: string;
  /** This process's default call deadline, ms (alias of `resources.timeout`). */
  timeout?: Duration;
  resources?: Resources;
  restartPolicy?: RestartPolicy | boolean;
  output?: OutputOption;
  /** Processes the worker may call, name -> process id (handed over as capabilities; `@InjectProcess(name)` in the worker). */
  processes?: Record<string, number>;
}

export interface CallOptions {
  /** This call's deadline, ms. */
  timeout?: number;
  /** A routing key for a pool's hash strategies. */
  key?: string;
  /**
   * How many times a call whose worker crashed is sent again, after the restart (a pool:
   * to another worker), within this call's deadline. Default 0 (a pool: its `retries`).
   * Only for calls that are safe to repeat: a retried call may run more than once.
   */
  retries?: number;
  /** Aborting it rejects the call with the signal's reason and cancels it in the worker (the method's own AbortSignal fires). */
  signal?: AbortSignal;
}

export interface ProcessInfo {
  processId: number;
  name: string;
  /** The OS pid: the child's, or the host's for `worker` and `none`. */
  pid: number;
  state: ProcessState;
  restarts: number;
  isolation: Isolation;
  transport: Transport;
}

export interface HealthReport {
  /** The worker's own, else derived from the checks: any `fail` → unhealthy, any `warn` → degraded. */
  status: 'healthy' | 'degraded' | 'unhealthy';
  /** The checks as the worker returned them. */
  checks: { name: string; status: 'pass' | 'warn' | 'fail'; message: string }[];
  /** ms since the epoch. */
  timestamp: number;
}

export interface ProcessMetrics {
  /** Percent of one core. */
  cpu: number;
  /** RSS bytes. */
  memory: number;
  requests: number;
  errors: number;
  inFlight: number;
  /** ms. */
  latency: { p50: number; p95: number; p99: number };
}

/** The payload of `pm.on(event, ...)`. */
export interface ProcessEvent {
  type: EventName;
  processId: number;
  pid?: number;
  exitCode?: number | null;
  /** The signal that ended the worker, such as `'SIGKILL'`. */
  signal?: string | null;
  attempt?: number;
  /** ms before the restart. */
  delay?: number;
  /** `memory`: the worker's RSS and the limit it passed, bytes. */
  rss?: number;
  limit?: number;
  /** `unhealthy`: how many probes in a row found it unhealthy. */
  probes?: number;
}

/**
 * Event names: core's process events (spawn, ready, crash, restart, failed, exit, refused, memory above
 * `resources.maxMemory`, unhealthy from periodic health); and the Node host's own `output:dropped`
 * (`{ dropped }`: worker output lines an output callback lost because its bounded queue was full while
 * this thread was busy).
 */
/** The supervision strategies: the kebab-case strings, or the same values named (`SupervisionStrategy.ONE_FOR_ALL === 'one-for-all'`). */
export const SupervisionStrategy = Object.freeze({
  ONE_FOR_ONE: 'one-for-one',
  ONE_FOR_ALL: 'one-for-all',
  REST_FOR_ONE: 'rest-for-one',
  SIMPLE_ONE_FOR_ONE: 'simple-one-for-one',
} as const);
export type SupervisionStrategy = (typeof SupervisionStrategy)[keyof typeof SupervisionStrategy];

/** `@Supervisor({ ... })`: the strategy, the restart intensity (`maxRestarts` within `window`) and the backoff before each restart. */
export interface SupervisorOptions {
  /** The supervisor's name, the first part of its children's names (`app/database`); default: the class's. */
  name?: string;
  /** Default `one-for-one`. */
  strategy?: SupervisionStrategy;
  /** Restarts allowed within `window` (default 3); one more and the supervisor stops its children and fails. */
  maxRestarts?: number;
  /** ms (default 60 000). */
  window?: Duration;
  /** The seed's backoff object, or a bare duration: the initial wait. */
  backoff?: Backoff | Duration;
  /** Alias of `backoff.initial`. */
  initialBackoff?: Duration;
  /** Alias of `backoff.max`. */
  maxBackoff?: Duration;
  /** Alias of `backoff.multiplier`. */
  multiplier?: number;
}

/** A child's restart type: `permanent` (always restarted), `transient` (only after an abnormal exit), `temporary` (never). */
export type ChildRestart = 'permanent' | 'transient' | 'temporary';

/** `@Child({ ... })`: how the child is supervised, and how its worker is spawned. Its own `restartPolicy`
 * is refused: a supervised child's restarts are its supervisor's. */
export interface ChildOptions extends Omit<SpawnOptions, 'restartPolicy'> {
  /** A child that cannot be kept up fails the supervisor. */
  critical?: boolean;
  /** A child whose failure is tolerated: when its own restart budget is spent it is left failed while the rest run. */
  optional?: boolean;
  /** Default `permanent`. */
  restart?: ChildRestart;
  /** Run the worker as a pool (the pool replaces crashed members itself). */
  pool?: Omit<PoolOptions, keyof SpawnOptions>;
  /** Earlier siblings this worker may call, by name (handed over as capabilities). */
  inject?: string[];
}

export type SupervisorState = 'running' | 'failed' | 'stopped';

/** One row of `sup.children()`. */
export interface ChildInfo {
  name: string;
  kind: 'worker' | 'pool' | 'supervisor';
  state: ProcessState;
  /** Restarts by the supervisor. */
  restarts: number;
  /** The worker's process id (or the pool's or nested supervisor's id); it survives restarts. */
  processId: number;
  /** The process ids serving it. */
  processIds: number[];
}

export type SupervisorEventName = 'child:started' | 'child:exited' | 'child:restarted' | 'supervisor:failed' | 'supervisor:stopped';

export interface SupervisorEvent {
  type: SupervisorEventName;
  /** The child's name (child events). */
  name?: string;
  processId?: number;
  restarts?: number;
  exitCode?: number | null;
  signal?: number | null;
  /** `child:exited`: it ended on its own with code 0. */
  normal?: boolean;
  /** `supervisor:failed`: why. */
  reason?: string;
}

export type EventName = 'spawn' | 'ready' | 'crash' | 'restart' | 'failed' | 'exit' | 'refused' | 'memory' | 'unhealthy' | 'selfheal' | 'output:dropped';

type AnyFunction = (...args: any[]) => any;

/** A method's parameters without a trailing AbortSignal (the worker supplies it). */
export type CallerArgs<A extends any[]> = A extends [...infer Head, AbortSignal]
  ? Head
  : A extends [...infer Head, (AbortSignal | undefined)?]
    ? Head | A
    : A;

/** A worker method as the host calls it: same arguments, a Promise of the result. */
export type Remote<F> = F extends (...args: infer A) => infer R ? (...args: CallerArgs<A>) => Promise<Awaited<R>> : never;

/** A pool's balancing strategy: the kebab-case strings, or the same values named (`PoolStrategy.LEAST_LOADED === 'least-loaded'`). */
export const PoolStrategy = Object.freeze({
  ROUND_ROBIN: 'round-robin',
  RANDOM: 'random',
  LEAST_LOADED: 'least-loaded',
  LEAST_CONNECTIONS: 'least-connections',
  WEIGHTED_ROUND_ROBIN: 'weighted-round-robin',
  LEAST_RESPONSE_TIME: 'least-response-time',
  LATENCY: 'latency',
  IP_HASH: 'ip-hash',
  CONSISTENT_HASH: 'consistent-hash',
  WEIGHTED: 'weighted',
  ADAPTIVE: 'adaptive',
  POWER_OF_TWO: 'power-of-two',
} as const);
export type PoolStrategy = (typeof PoolStrategy)[keyof typeof PoolStrategy];

/** `pm.pool(target, options)`: the spawn options of each worker, and the pool's own (durations in ms). */
export interface PoolOptions extends SpawnOptions {
  /** Workers (default 2), or `'auto'`: the CPU count. */
  size?: number | 'auto';
  /** A `remote:NAME` pool's fewest members (instead of `size`): calls queue until that many have joined. */
  min?: number;
  /** Default `least-connections`. */
  strategy?: PoolStrategy;
  /** Calls one worker runs at once (default 1). */
  concurrency?: number;
  /** Calls sent ahead to a busy worker beyond its concurrency, waiting there so it never idles through a round trip (default 8; 0: off). They count as queued for `maxQueueSize`. */
  pipeline?: number;
  /** Calls that may wait for a free worker (default 100); beyond it PoolBackpressureError at once. */
  maxQueueSize?: number;
  /** A pool call's default deadline, ms. */
  requestTimeout?: number;
  /** A call whose worker crashed is retried on another worker up to this many times (default 0). */
  retries?: number;
  /** Per-worker weights for the weighted strategies. */
  weights?: number[];
  autoScale?: boolean | AutoScale;
  circuitBreaker?: boolean | { enabled?: boolean; threshold?: number; timeout?: Duration; halfOpenRequests?: number };
  health?: boolean | { enabled?: boolean; interval?: Duration; unhealthyThreshold?: number };
  recycle?: boolean | { enabled?: boolean; maxRequests?: number; maxLifetime?: Duration; maxMemory?: number | string };
}

export interface AutoScale {
  enabled?: boolean;
  /** Default 1. */
  min?: number;
  /** Default the CPU count. */
  max?: number;
  /** Percent of one core per worker. */
  targetCPU?: number;
  /** Alias of `targetCPU`. */
  targetCpu?: number;
  /** Percent of the machine's memory. */
  targetMemory?: number;
  scaleUpThreshold?: number;
  scaleDownThreshold?: number;
  /** ms between two scalings. */
  cooldownPeriod?: Duration;
  /** Alias of `cooldownPeriod`. */
  cooldown?: Duration;
  /** ms between two looks at the load. */
  interval?: Duration;
}

export interface PoolMetrics {
  size: number;
  busy: number;
  idle: number;
  queueLength: number;
  requests: number;
  errors: number;
  errorRate: number;
  latency: { p50: number; p95: number; p99: number };
  state: string;
  /** The circuit breaker's state, or null without one. */
  breaker: 'closed' | 'open' | 'half-open' | null;
  workers: { processId: number; pid: number; inFlight: number; requests: number; errors: number; latency: { p50: number; p95: number; p99: number }; cpu: number; memory: number }[];
}

/** Pool event names: pool:initialized, pool:scaled, pool:drained, pool:destroyed, pool:failed, worker:spawned, worker:crashed, worker:replaced, worker:unhealthy, circuitbreaker:open|halfopen|close (their `state`: open, half-open, closed). Worker events carry `processId`. */
export type PoolEventName = string;

export type Methods<T> = {
  readonly [K in keyof T as K extends 'init' ? never : T[K] extends AnyFunction ? K : never]: Remote<T[K]>;
};

/** A pool of workers of `T`: every method of `T` goes to the worker the strategy picks; the pool's own members win over `T`'s. */
export type PoolProxy<T> = Omit<Methods<T>, 'size' | 'scale' | 'metrics' | 'drain' | 'destroy' | 'on' | 'once' | 'off' | 'withOptions'> & {
  readonly __poolId: number;
  /** The number of workers, as last reported. */
  readonly size: number;
  /** Grows or shrinks to `n` workers; removed ones finish their calls first. */
  scale(n: number): Promise<void>;
  metrics(): Promise<PoolMetrics>;
  /** Finishes in-flight and queued calls and refuses new ones. */
  drain(): Promise<void>;
  /** Drains, then stops every worker. */
  destroy(): Promise<void>;
  on(event: PoolEventName, listener: (data: any) => void): PoolProxy<T>;
  once(event: PoolEventName, listener: (data: any) => void): PoolProxy<T>;
  off(event: PoolEventName, listener: (data: any) => void): PoolProxy<T>;
  /** A view whose calls use these options (`key` feeds the hash strategies). */
  withOptions(options: CallOptions): PoolProxy<T>;
};

/** The host's handle to a spawned process: every method of `T` returns a Promise of its result. */
export type ProcessProxy<T> = Methods<T> & {
  /** The process id: stable across restarts. */
  readonly __processId: number;
  /** A view whose calls use these options. */
  withOptions(options: CallOptions): ProcessProxy<T>;
};

/** `pm.listen(options)`: where and how a host accepts remote workers. */
export interface ListenOptions {
  /** `ip:port` (port 0: any free port). Without `tls`, only a loopback address. */
  address: string;
  /** Mutual TLS (PEM paths): the host's certificate and key, and the CA that signs the workers' certificates. */
  tls?: { cert: string; key: string; ca: string };
  /** A join token every worker presents (required without `tls`). */
  token?: string;
  /**
   * An HTTP gateway as well: `POST /processes/{name|id}/{method}` (a JSON array of arguments),
   * `GET /health`, `GET /metrics`, each with `Authorization: Bearer TOKEN`. HTTPS with `tls`'s
   * cert and key; without `tls`, plain HTTP on a loopback address only. `gatewayAddress()` says where.
   */
  gateway?: { address: string; token: string };
}
