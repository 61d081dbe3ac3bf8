// Compiled with `tsc --noEmit` by types.test.js: the proxy's types are right,
// and the @ts-expect-error lines must each be an error.
import { CallTimeoutError, PoolStrategy, ProcessManager, ProcessProxy, RemoteError, TitanError, createProcessManager } from 'titan-pm';
import type Calculator from '../fixtures/calculator';
import { Greeter } from '../fixtures/classes';

export async function check(pm: ProcessManager): Promise<void> {
  const calc = await pm.spawn<Calculator>('calculator.js', { isolation: 'child', dependencies: { config: {} } });
  const sum: number = await calc.add(1, 2);
  const later: Promise<number> = calc.addAsync(1, 2);
  const done: Promise<string> = calc.slow(100); // the worker supplies the AbortSignal
  const id: number = calc.__processId;
  const quick: ProcessProxy<Calculator> = calc.withOptions({ timeout: 10, key: 'k', retries: 2, signal: AbortSignal.timeout(5) });
  const info = await pm.getProcess(calc);
  const state: 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed' = info.state;
  const p50: number = (await pm.getMetrics(id)).latency.p50;
  const error: TitanError = new RemoteError('x');
  const timeout: TitanError = new CallTimeoutError('y');
  const pool = await pm.pool<Calculator>('calculator.js', { size: 4, strategy: 'least-loaded', maxQueueSize: 10 });
  const pooled: number = await pool.add(1, 2);
  const size: number = pool.size;
  await pool.scale(8);
  pool.on('pool:scaled', (e) => void e);
  const keyed: Promise<number> = pool.withOptions({ key: 'user-1' }).increment();
  // The seed's names: a class spawned by reference is typed by it; PoolStrategy names the strings.
  const greeter = await pm.spawn(Greeter, { isolation: 'none', version: '1.0.0' });
  const greeting: string = await greeter.greet('ada');
  const strategy: PoolStrategy = PoolStrategy.POWER_OF_TWO;
  const greeters = await pm.pool(Greeter, { size: 2, strategy, autoScale: { targetMemory: 80, min: 1, max: 3 } });
  const breaker: 'closed' | 'open' | 'half-open' | null = (await greeters.metrics()).breaker;
  const seed = createProcessManager({
    restartPolicy: { enabled: true, maxRestarts: 3, window: 60000, backoff: { type: 'linear', initial: 100, max: 30000 } },
    resources: { maxMemory: '512MB', maxCpu: 50, timeout: 30000 },
    monitoring: { healthCheck: { interval: 5000, timeout: 2000 }, metrics: true, tracing: true },
  });
  void [sum, later, done, quick, state, p50, error, timeout, createProcessManager({ isolation: 'worker' }), pooled, size, keyed];
  void [greeting, breaker, seed];

  // @ts-expect-error: greet takes a string
  await greeter.greet(1);
  // @ts-expect-error: not a backoff type
  createProcessManager({ restartPolicy: { backoff: { type: 'cubic' } } });
  // @ts-expect-error: not a transport
  createProcessManager({ transport: 'websocket' });

  // @ts-expect-error: not a known strategy
  await pm.pool('x.js', { strategy: 'fastest' });
  createProcessManager({ transport: 'http' });

  // @ts-expect-error: add takes numbers
  await calc.add('1', 2);
  // @ts-expect-error: add resolves to a number
  const wrong: string = await calc.add(1, 2);
  // @ts-expect-error: init is not callable through the proxy
  await calc.init();
  // @ts-expect-error: there is no such method
  await calc.nope();
  // @ts-expect-error: not a known isolation
  await pm.spawn('x.js', { isolation: 'thread' });
  void wrong;
}
