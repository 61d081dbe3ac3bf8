// The private native module (crate bindings/node), loaded through the loader
// that `napi build` generates next to it. Nothing here is public API.
import type * as Binding from '../native/binding';

export const native: typeof Binding = require('../native/binding.js');

// What the JS runtime's dispatch function is asked to do (agent.rs).
export const CALL = 0;
export const CANCEL = 1;
export const INIT = 2;
export const HEALTH = 3;
export const SHUTDOWN = 4;
export const EXIT = 5;
/** The outcome of a grantCall/grantShared* operation (agent.rs REPLY). */
export const REPLY = 6;
