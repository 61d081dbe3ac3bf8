#!/usr/bin/env node
// `titan-pm-worker`: a remote Node worker started by an orchestrator (Kubernetes,
// systemd, ...) rather than by a host. `titan-pm-worker --connect HOST:PORT --name NAME
// [--tls-cert F --tls-key F --tls-ca F] [--token T] worker.js` (or `TITAN_PM_*`
// variables): the core's agent dials the listening host, rejoins it when it goes
// away and drains calls on SIGTERM; this file only hands the flags over.
import * as path from 'node:path';

import { native } from '../binding';
import { main } from './main';

const USAGE =
  'usage: titan-pm-worker --connect HOST:PORT|wss://HOST:PORT --name NAME [--tls-cert F --tls-key F --tls-ca F] [--token T] WORKER.js';

let rest: string[];
try {
  rest = native.takeWorkerArgs(process.argv.slice(2));
} catch (e: any) {
  console.error(`titan-pm-worker: ${e.message}`);
  process.exit(2);
}
if (rest.length !== 1 || rest[0].startsWith('--')) {
  console.error(USAGE);
  process.exit(2);
}
process.argv[1] = path.resolve(rest[0]);
void main();
