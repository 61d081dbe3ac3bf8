#!/usr/bin/env node
// The `titan-pm` command of the npm package (package.json `bin`): the same CLI as
// the Rust binary, run by the native addon (`cliRun`) on this thread. `start`
// launches its daemon as `node <this file> ... start --no-daemon` in a new session
// rather than forking this process.
import { native } from './binding';

process.exitCode = native.cliRun(['titan-pm', ...process.argv.slice(2)], [process.execPath, __filename], process.execPath);
