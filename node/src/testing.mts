// The ESM entry of `titan-pm/testing`: the same module instance as the CommonJS one.
export * from './testing.js';
