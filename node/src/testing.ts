// `titan-pm/testing`: the seed's TestProcessManager on real workers. A real
// ProcessManager (isolation `none` by default) whose native side is the core's
// test manager: crashes through the real restart path, failure injection,
// health and metrics overrides, a clock the test moves, an operations record,
// and a strict cleanup. Every decision is the core's (`testing` module); this
// file converts. Works under node:test, vitest and jest (no test-framework import).
import { rethrow } from './errors';
import { nativeOf, ProcessManager, TEST_MANAGER } from './manager';
import type { HealthReport, ManagerConfig, ProcessMetrics } from './types';

type ProcessRef = number | { readonly __processId: number };
const idOf = (p: ProcessRef) => (typeof p === 'number' ? p : p.__processId);

/** A test manager's options: every ManagerConfig option, plus these. */
export interface TestManagerConfig extends ManagerConfig {
  /** Keep the operations record (default true). */
  recordOperations?: boolean;
  /** Start with a clock that only `advanceTime` moves (default false). */
  controlTime?: boolean;
}

/** One recorded operation: `{ type: 'spawn', processClass, processId }`, `kill`, `crash`, `restart`, `failed`, `exit`, `recycle`, `call` (`method`, `outcome`), `scale`, `supervisor:child:started|exited|restarted`, `supervisor:failed|stopped` (`supervisorId`), `workflow:started`, `workflow:stage:started|completed|failed|retrying`, `workflow:compensation:started|completed`, `workflow:completed|failed` (`workflow`, `runId`, `stage` ..., `processId` the workflow's process). */
export interface Operation {
  type: 'spawn' | 'kill' | 'crash' | 'restart' | 'failed' | 'exit' | 'recycle' | 'call' | 'scale' | `supervisor:${string}` | `workflow:${string}`;
  processId?: number;
  processClass?: string;
  method?: string;
  /** For `call`: `ok` or `error` (then `error` is the class name and `message` the text). */
  outcome?: 'ok' | 'error';
  error?: string;
  message?: string;
  /** For `restart`: the attempt and its backoff delay (ms). */
  attempt?: number;
  delay?: number;
  /** For `scale`. */
  poolId?: number;
  from?: number;
  to?: number;
  /** ms since the epoch, on the manager's clock. */
  timestamp: number;
  [field: string]: unknown;
}

export class TestProcessManager extends ProcessManager {
  constructor(config: TestManagerConfig = {}) {
    super({ isolation: 'none', ...config } as ManagerConfig, TEST_MANAGER);
  }

  #n() {
    return nativeOf.get(this)!;
  }

  /** Crashes the real worker (child: SIGKILL; in-process: torn down as a crash); resolves once the manager has taken it in. */
  simulateCrash(process: ProcessRef): Promise<void> {
    return this.#n().testSimulateCrash(idOf(process)).catch(rethrow);
  }

  /** True once the process runs and answers again; false if it failed, or after `timeout` ms. */
  async waitForRecovery(process: ProcessRef, timeout = 5000): Promise<boolean> {
    try {
      return (await this.#n().testWaitForRecovery(idOf(process), timeout)) as boolean;
    } catch (e) {
      return rethrow(e);
    }
  }

  /** The given fields replace the measured ones in getMetrics (and for pools) until clearMetrics. */
  setMetrics(process: ProcessRef, metrics: Partial<ProcessMetrics>): void {
    try {
      this.#n().testSetMetrics(idOf(process), metrics);
    } catch (e) {
      rethrow(e);
    }
  }

  /** What getHealth (and the periodic health probe) reports until clearHealth. */
  setHealth(process: ProcessRef, health: Partial<HealthReport> | HealthReport['status'] | boolean): void {
    try {
      this.#n().testSetHealth(idOf(process), health);
    } catch (e) {
      rethrow(e);
    }
  }

  clearMetrics(process: ProcessRef): void {
    this.#n().testClearMetrics(idOf(process));
  }

  clearHealth(process: ProcessRef): void {
    this.#n().testClearHealth(idOf(process));
  }

  /** Fails the next `spawn:Name`, `call:method` or `call:Name.method` with `error` (a spawn: SpawnError with its message; a call: RemoteError of its type). */
  simulateFailure(operation: string, error: Error | string): void {
    const [type, message] = error instanceof Error ? [error.name, error.message] : ['Error', String(error)];
    try {
      this.#n().testSimulateFailure(operation, type, message);
    } catch (e) {
      rethrow(e);
    }
  }

  clearFailures(): void {
    this.#n().testClearFailures();
  }

  /** With `controlTime: true`: moves the clock `ms` forward, firing every timer due on the way, in order.
   * Call deadlines, spawn and shutdown timeouts and workflow leases stay real time (they bound real
   * work or are shared with other hosts). */
  async advanceTime(ms: number): Promise<void> {
    try {
      await this.#n().testAdvanceTime(ms);
    } catch (e) {
      rethrow(e);
    }
  }

  /** The manager's clock, ms since the epoch. */
  getCurrentTime(): number {
    return this.#n().testCurrentTime();
  }

  /** Back to real time; pending timers wait out what is left of them. */
  resetTime(): void {
    this.#n().testResetTime();
  }

  getOperations(): Operation[] {
    return this.#n().testOperations() as Operation[];
  }

  verifyOperation(type: Operation['type'] | string, predicate: (op: Operation) => boolean = () => true): boolean {
    return this.getOperations().some((op) => op.type === type && predicate(op));
  }

  clearOperations(): void {
    this.#n().testClearOperations();
  }

  /** Shuts down; rejects (ConfigError) naming any worker that outlived the shutdown: a child, a
   * worker thread still running (one stuck in native code), an in-process runtime still held. */
  async cleanup(): Promise<void> {
    let leaked: unknown;
    await this.#n().testCleanup().catch((e: unknown) => { leaked = e; });
    await this.shutdown(); // stops this manager's in-process runtimes
    if (leaked !== undefined) rethrow(leaked);
  }
}

/** A real manager for tests: isolation `none` by default, `recordOperations: true`, `controlTime: false`. */
export function createTestProcessManager(config: TestManagerConfig = {}): TestProcessManager {
  return new TestProcessManager(config);
}
