// The ESM entry: the same module instance as the CommonJS one (no dual-package hazard).
export * from './index.js';
