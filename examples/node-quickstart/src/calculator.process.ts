// A worker: a decorated class, default-exported. Compiled to
// dist/calculator.process.js, which is what the host spawns.
import { HealthCheck, OnShutdown, Process, Public } from 'titan-pm';

@Process({ name: 'calculator', version: '1.0.0' })
export default class Calculator {
  private calls = 0;
  private precision = 2;

  // Gets the spawn's dependencies, values in key order.
  init(config: { precision: number }): void {
    this.precision = config.precision;
  }

  @Public() add(a: number, b: number): number {
    this.calls++;
    return a + b;
  }

  @Public() async divide(a: number, b: number): Promise<number> {
    this.calls++;
    if (b === 0) throw new RangeError('division by zero');
    return Number((a / b).toFixed(this.precision));
  }

  // A trailing AbortSignal parameter is filled by the worker: it fires when
  // the call's deadline passes or the caller aborts.
  @Public() async slow(ms: number, signal: AbortSignal): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(signal.reason);
      });
    });
    return `waited ${ms} ms`;
  }

  @HealthCheck() health() {
    return { status: 'healthy', checks: [{ name: 'calls', status: 'healthy', message: `${this.calls} calls` }] };
  }

  @OnShutdown() goodbye(): void {
    console.log(`calculator: shutting down after ${this.calls} calls`);
  }
}
