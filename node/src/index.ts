// titan-pm for Node: decorate a worker class, spawn it from a ProcessManager,
// call it through a typed proxy. See the README's TypeScript quick start.
export { ProcessManager, createProcessManager } from './manager';
export { ControlServer } from './control';
export type { WorkerClass } from './manager';
export { Process, Public, Method, HealthCheck, OnShutdown, definitionOf } from './decorators';
export type { ProcessOptions, ProcessDefinition, HealthCheckOptions, MethodMarker, ClassMarker } from './decorators';
export {
  TitanError,
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
} from './errors';
export { Workflow, Stage, Compensate, WorkflowHandle } from './workflow';
export type { StageOptions, StageContext, WorkflowClassOptions, WorkflowEvent, WorkflowEventName, RunSummary } from './workflow';
export { RateLimit, Cache, Validate, Trace, Metric, CircuitBreaker, Idempotent, SelfHeal, policiesOf } from './policies';
export type { RateLimitOptions, CacheOptions, ValidateOptions, StandardSchemaV1, CircuitBreakerOptions, IdempotentOptions, SelfHealOptions } from './policies';
export { getTraceContext } from './trace';
export type { TraceContext } from './trace';
export { Supervisor, Child, SupervisorHandle, isSupervisor } from './supervisor';
export type { FieldMarker } from './supervisor';
export { PoolStrategy, SupervisionStrategy } from './types';
export type * from './types';
export { InjectProcess, SharedState } from './given';
export type { GivenProcess, Shared } from './given';
