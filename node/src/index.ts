// titan-pm for Node: decorate a worker class, spawn it from a ProcessManager,
// call it through a typed proxy. See the README's TypeScript quick start.
//
// A worker file imports this module for its decorators, in a worker thread that
// starts cold: the host side (`ProcessManager`, `ControlServer`, and what they
// load) is required on first use, not at import, so spawning a worker thread does
// not load it. The `0 && (exports.X = ...)` line (never run) names them for Node's
// CommonJS export detection (`cjs-module-lexer`), which gives `index.mjs` (and any
// ESM `import { ProcessManager } from 'titan-pm'`) the same named exports.
import type * as Manager from './manager';
import type * as Control from './control';

export declare const ProcessManager: typeof Manager.ProcessManager;
export type ProcessManager = Manager.ProcessManager;
export declare const createProcessManager: typeof Manager.createProcessManager;
export declare const ControlServer: typeof Control.ControlServer;
export type ControlServer = Control.ControlServer;
export type { WorkerClass } from './manager';
const host = (): typeof Manager => require('./manager');
for (const [name, get] of [
  ['ProcessManager', () => host().ProcessManager],
  ['createProcessManager', () => host().createProcessManager],
  ['ControlServer', () => (require('./control') as typeof Control).ControlServer],
] as const) {
  Object.defineProperty(exports, name, { enumerable: true, get });
}
0 && (exports.ProcessManager = exports.createProcessManager = exports.ControlServer = undefined);
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
export { InjectProcess, SharedState, sharedValue } from './given';
export type { GivenProcess, Shared } from './given';
