# titan-pm wire protocol: the only source of truth for how a host and a worker talk.
#
# A worker (any language with a Cap'n Proto RPC library) connects to its host,
# takes the host's bootstrap `Registry` and calls `register` with the per-spawn
# secret and its own `Worker` capability. From then on the host calls the worker.
# Errors travel as data (`ErrorInfo`), never only as an RPC exception string.

@0x8b81bf1c99b42cfe;

# The dynamic value every front end maps to and from.
struct Value {
  union {
    null @0 :Void;
    bool @1 :Bool;
    int @2 :Int64;
    float @3 :Float64;
    text @4 :Text;
    data @5 :Data;
    list @6 :List(Value);
    map @7 :List(Entry);   # text keys, order kept
  }

  struct Entry {
    key @0 :Text;
    value @1 :Value;
  }
}

# What went wrong in the worker, as data.
struct ErrorInfo {
  kind @0 :Kind;
  type @1 :Text;          # the remote exception's type name, e.g. "ValueError"
  message @2 :Text;
  stack @3 :Text;         # remote stack trace or traceback, may be empty
  code @4 :Text;          # optional application error code
  available @5 :List(Text);  # with kind methodNotFound: the public methods

  enum Kind {
    remote @0;            # the method raised
    methodNotFound @1;
    serialization @2;     # the worker could not decode the args or encode the result
    cancelled @3;         # the host cancelled the call
    init @4;              # init() raised
  }
}

struct CallContext {
  callId @0 :UInt64;      # unique per connection; names the call for `cancel`
  timeoutMs @1 :UInt64;   # time left when the host sent the call; 0 = no deadline
  traceId @2 :Text;
  spanId @3 :Text;
  parentSpanId @4 :Text;  # the caller's span (W3C trace context: trace id 32 hex, span ids 16 hex)
  # 0: the call runs at once. Else it waits in the worker (in arrival order) until fewer than
  # this many calls run there: a pool member's `concurrency`, while the pool pipelines calls to it.
  maxRunning @5 :UInt32;
  # Processes given with this call: a host passed their handles as arguments (the
  # sidecar pattern); each argument `{"$given": name}` is the process granted under
  # `name`. The worker keeps them (it may call them in later calls too).
  grants @6 :List(Grant);
}

struct CallResult {
  union {
    ok @0 :Value;
    error @1 :ErrorInfo;
  }
}

struct MethodInfo {
  name @0 :Text;
  timeoutMs @1 :UInt64;   # the method's own default deadline, 0 = the host's
  policies @2 :MethodPolicies;  # null: none
}

# A method's policies (the decorators of ARCHITECTURE.md section 8), as data.
# Each member is null when the method does not declare it. `keyArg` names an
# argument: a decimal index ("0") or a field of the first argument ("userId");
# empty: all arguments.
struct MethodPolicies {
  rateLimit @0 :RateLimit;
  cache @1 :Cache;
  validate @2 :Validate;
  trace @3 :Bool;
  metric @4 :Metric;
  circuitBreaker @5 :CircuitBreaker;
  idempotent @6 :Idempotent;
  selfHeal @7 :SelfHeal;

  struct RateLimit {
    rps @0 :Float64;
    burst @1 :UInt32;       # 0 = rps rounded up
    strategy @2 :Strategy;
    keyArg @3 :Text;

    enum Strategy {
      tokenBucket @0;
      slidingWindow @1;
      fixedWindow @2;
    }
  }

  struct Cache {
    ttlMs @0 :UInt64;
    keyArg @1 :Text;
    hasCondition @2 :Bool;  # the worker decides per result whether it may be cached
  }

  struct Validate {
    jsonSchema @0 :Value;   # null: no JSON Schema (a validator object in the worker only)
    hasValidator @1 :Bool;  # the worker runs its own validator before the method
  }

  struct Metric {
    name @0 :Text;          # empty: the method's name
  }

  struct CircuitBreaker {
    threshold @0 :UInt32;
    timeoutMs @1 :UInt64;
    halfOpenRequests @2 :UInt32;
    fallback @3 :Text;      # a method of the same worker; empty: CircuitOpenError
  }

  struct Idempotent {
    keyField @0 :Text;
    ttlMs @1 :UInt64;
  }

  struct SelfHeal {
    symptoms @0 :List(Text);  # timeout, connection_error, crash, or an exception type name
    action @1 :Action;
    cooldownMs @2 :UInt64;

    enum Action {
      restart @0;
      recycle @1;
      reinit @2;
    }
  }
}

struct Description {
  name @0 :Text;
  version @1 :Text;
  methods @2 :List(MethodInfo);
  pid @3 :UInt32;
  runtime @4 :Text;       # "rust", "python", "node", ...
  hasHealthCheck @5 :Bool;
  healthIntervalMs @6 :UInt64;  # the class's own probe interval (@HealthCheck({ interval })), 0 = the host's
  workflow @7 :WorkflowInfo;     # set when the class is a workflow (@Workflow / @workflow / WorkerDef::stage)
}

# A workflow class's stage graph: its stages are public methods of the worker.
struct WorkflowInfo {
  stages @0 :List(StageInfo);
  compensations @1 :List(CompensationInfo);
}

struct StageInfo {
  name @0 :Text;            # the stage's name, unique in the workflow (keys of the results map)
  dependsOn @1 :List(Text);
  timeoutMs @2 :UInt64;     # per attempt; 0 = the method's / host's default deadline
  retries @3 :UInt32;       # attempts after the first
  parallel @4 :Bool = true; # false: runs alone, never alongside another stage
  method @5 :Text;          # the public method that runs it
}

struct CompensationInfo {
  stage @0 :Text;           # the stage it undoes
  method @1 :Text;          # the public method: (result, error, context)
}

struct HealthReport {
  status @0 :Status;
  checks @1 :List(Check);
  timestampMs @2 :UInt64;

  enum Status {
    healthy @0;
    degraded @1;
    unhealthy @2;
  }

  # A check's own verdict, as the worker returned it.
  enum CheckStatus {
    pass @0;
    warn @1;
    fail @2;
  }

  struct Check {
    name @0 :Text;
    status @1 :CheckStatus;
    message @2 :Text;
  }
}

# Counters the worker keeps about itself; the host measures latency on its side.
struct WorkerMetrics {
  requests @0 :UInt64;
  errors @1 :UInt64;
  inFlight @2 :UInt32;
  cancelled @3 :UInt64;
  # The worker's own process, read by itself (a remote worker's pid is on another
  # machine): percent of one core since its previous report, and RSS bytes.
  cpu @4 :Float64;
  memory @5 :UInt64;
}

interface Worker {
  describe @0 () -> (description :Description);
  # Runs the worker's init with the spawn dependencies (a map). Called once, before any call.
  # `processes`: the processes this worker may call, by the name it was given them
  # under (@InjectProcess, sidecars): it can reach exactly these. `shared`: the
  # host-held state of the worker's class (@SharedState). Both may be absent.
  init @1 (dependencies :Value, processes :List(Grant), shared :SharedState) -> (error :ErrorInfo, failed :Bool);
  # `uncacheable`: a cache policy's condition refused this result (worker side).
  call @2 (method :Text, args :List(Value), context :CallContext) -> (result :CallResult, uncacheable :Bool);
  # Stops the call named by callId; returns once the work has stopped.
  cancel @3 (callId :UInt64) -> (found :Bool);
  health @4 () -> (report :HealthReport);
  metrics @5 () -> (metrics :WorkerMetrics);
  # Runs the shutdown hooks, then the worker exits (a child process) or stops serving.
  shutdown @6 () -> ();
}

# The host's bootstrap capability on every worker connection.
interface Registry {
  # Refused (an RPC error "secret refused") unless `secret` is this spawn's secret.
  register @0 (secret :Text, worker :Worker, pid :UInt32) -> ();
}

# A process a worker was given (@InjectProcess, sidecars), served by the host. A
# capability, never an address or a secret: holding it is the permission.
interface Caller {
  # Calls the process as a host would (a restart in between is waited for within
  # the deadline); errors come back as the host would see them. timeoutMs 0: the
  # process's default deadline.
  # traceId and spanId: the calling worker's current call (its span becomes the
  # parent of this call's span, so the call joins its trace); empty: a new trace.
  call @0 (method :Text, args :List(Value), timeoutMs :UInt64, traceId :Text, spanId :Text) -> (result :CallResult);
}

struct Grant {
  name @0 :Text;
  caller @1 :Caller;
}

# The host-held values of one class's @SharedState properties, shared by every
# instance of that class under one manager. Each operation is atomic on its own.
interface SharedState {
  # The property's value; null if it was never set.
  get @0 (property :Text) -> (value :Value);
  set @1 (property :Text, value :Value) -> ();
  # Adds `delta` (an int or a float) to the property (null counts as 0) and
  # returns the new value, in one step: no increment from any instance is lost.
  add @2 (property :Text, delta :Value) -> (value :Value);
  # Sets the property to `value` if it was never set (the first instance seeds
  # @SharedState's initial value) and returns its value, in one step.
  init @3 (property :Text, value :Value) -> (value :Value);
}

# ---- The control interface (`titan-pm` CLI) ----
#
# A manager that opts in (`serve_control`) serves `Manager` as the bootstrap
# capability of a 0600 Unix socket, to its own user only. Reports travel as
# `Value` maps in the TypeScript spelling (camelCase, ms): the same shapes
# the API returns. A `target` names a process by id or name, or a pool by
# `pool:ID` or name; an empty target means every process. Errors are RPC
# exceptions whose text is the core's error message.

# One line a worker wrote, kept in the host's per-process ring buffer.
struct LogLine {
  processId @0 :UInt64;
  name @1 :Text;
  pid @2 :UInt32;
  stderr @3 :Bool;
  line @4 :Text;
  timestampMs @5 :UInt64;
}

# Where a `logs --follow` or an `events` stream goes; the client serves it.
interface LogSink {
  line @0 (line :LogLine) -> ();
}

interface EventSink {
  # A process or pool event report (`{type, processId, ...}`).
  event @0 (event :Value) -> ();
}

# Held by the client while it streams; dropping it ends the stream.
interface Subscription {}

interface Manager {
  # Every process: its info report plus `metrics`, `uptime` (ms) and `pool` (the pool id or null).
  list @0 () -> (processes :Value);
  # One process's row, as `list` gives it.
  info @1 (target :Text) -> (info :Value);
  # Health reports: a list of `{processId, name, health}`.
  health @2 (target :Text) -> (reports :Value);
  # `{processes: [{processId, name, metrics}], pools: [{poolId, name, metrics}]}`.
  metrics @3 (target :Text) -> (metrics :Value);
  # Stops at once (SIGKILL); a pool target destroys the pool.
  kill @4 (target :Text) -> ();
  # Graceful: a new instance is started and ready before the old one drains and stops.
  restart @5 (target :Text) -> ();
  scale @6 (pool :Text, size :UInt32) -> ();
  # The last `lines` lines (0: all that are kept); with `follow`, new lines go to `sink`
  # until the client drops `subscription`.
  logs @7 (target :Text, lines :UInt32, follow :Bool, sink :LogSink) -> (lines :List(LogLine), subscription :Subscription);
  events @8 (sink :EventSink) -> (subscription :Subscription);
  # Graceful shutdown of every process, then the serving manager's owner exits.
  shutdown @9 () -> ();
  # Every pool: `{poolId, name, size, members: [processId], state}`.
  pools @10 () -> (pools :Value);
  # Graceful stop of one process (drain, hooks, SIGTERM, SIGKILL), unlike `kill`.
  stop @11 (target :Text) -> ();
  # Applies a process file (`{manager, process: [...], pool: [...]}` as a Value):
  # starts new entries, replaces changed ones (rolling: each new worker is ready
  # before the old one drains), stops removed ones; with `reloadAll`, unchanged
  # entries are reloaded too (new code on disk). Returns
  # `{started, reloaded, stopped, unchanged, warnings}` (lists of names / texts).
  apply @12 (file :Value, reloadAll :Bool) -> (summary :Value);
  # Calls `method` on a process (by id or name; several of that name: the first)
  # or through a pool (its balancing, queue and breaker). Errors are RPC exceptions.
  call @13 (target :Text, method :Text, args :List(Value), timeoutMs :UInt64) -> (result :Value);
  # Runs a workflow a process file declared (`[[workflow]]`, by name) with `input`
  # (empty `runId`: a new run; a finished run's id: its stored outcome). Returns every
  # stage's result by name; a failed run is an RPC exception with the WorkflowError text.
  runWorkflow @14 (name :Text, input :Value, runId :Text) -> (result :Value);
  # The workflows process files declared: `[{name, processId, stages: [{name, dependsOn}]}]`,
  # and the newest `limit` runs of the manager's journal: `[{runId, workflow, state, created, updated, leaseOwner}]`.
  workflows @15 (limit :UInt32) -> (workflows :Value, runs :Value);
}
