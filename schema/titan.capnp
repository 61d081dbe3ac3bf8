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
}

interface Worker {
  describe @0 () -> (description :Description);
  # Runs the worker's init with the spawn dependencies (a map). Called once, before any call.
  init @1 (dependencies :Value) -> (error :ErrorInfo, failed :Bool);
  call @2 (method :Text, args :List(Value), context :CallContext) -> (result :CallResult);
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
}
