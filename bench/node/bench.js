// titan-pm for Node against its peers, in one run on one machine:
// - a worker thread against piscina: sequential p50/p99 of a trivial call,
//   and throughput with 64 calls in flight on 2 threads (two workers called
//   round-robin by hand, and a titan-pm pool of 2);
// - a child worker against child_process IPC (fork + process.send): the same;
// - a Buffer round trip of 100 B, 10 KB, 1 MB and 16 MB against piscina (worker
//   thread) and fork + send (child; the Buffer travels as JSON there);
// - spawn to first answered call (worker thread, child process); for a worker thread
//   also each from a new manager (no thread started ahead).
// Pin to one vCPU with `taskset -c 0 node bench.js`.
// Prints each figure, the peer's, and the ratio (brief §6). Contestants take
// turns over BENCH_ROUNDS rounds (timings drift on a shared machine); each line
// shows the medians over the rounds and the median of the per-round ratios.
'use strict';
const { fork } = require('node:child_process');
const path = require('node:path');
const { ProcessManager } = require('../../node');
const { Piscina } = require('piscina');

const ECHO = path.join(__dirname, 'workers', 'echo.js');
const SEQUENTIAL = Number(process.env.BENCH_CALLS || 5000);
const THROUGHPUT = Number(process.env.BENCH_THROUGHPUT_CALLS || 20000);
const IN_FLIGHT = 64;
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const SPAWNS = Number(process.env.BENCH_SPAWNS || 15);
// The pause (ms) before each timed spawn.
const SETTLE = Number(process.env.BENCH_SETTLE ?? 150);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The core engine's spin (ms) for titan-pm's managers; unset: the default.
const SPIN = process.env.BENCH_SPIN === undefined ? undefined : Number(process.env.BENCH_SPIN);
// Which parts to run (comma-separated): thread, pool, buffer, child, spawn; unset: all.
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
const part = (name) => !ONLY || ONLY.has(name);

const now = () => performance.now();
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const median = (xs) => quantile(xs, 0.5);

async function sequential(call) {
  for (let i = 0; i < 300; i++) await call(i); // warm up
  const lat = [];
  for (let i = 0; i < SEQUENTIAL / ROUNDS; i++) {
    const t = now();
    await call(i);
    lat.push((now() - t) * 1000);
  }
  return { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

async function throughput(call) {
  const calls = Math.ceil(THROUGHPUT / ROUNDS);
  let next = 0;
  const lane = async () => {
    while (next < calls) await call(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane)); // warm up
  next = 0;
  const t = now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return calls / ((now() - t) / 1000);
}

/** p50 in µs of `n` sequential awaited `call`s, after one warm-up call. */
async function bufferP50(call, n) {
  await call();
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await call();
    lat.push(now() - t);
  }
  return quantile(lat, 0.5) * 1000;
}

/** Runs `ours` and `theirs` in turns, ROUNDS times; returns each one's results. */
async function turns(ours, theirs) {
  const a = [];
  const b = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await ours());
    b.push(await theirs());
  }
  return [a, b];
}

/** A forked child answering messages, with calls matched by id. */
function forkEcho(options) {
  const child = fork(path.join(__dirname, 'workers', 'fork-echo.js'), options);
  const pending = new Map();
  let id = 0;
  child.on('message', (m) => {
    pending.get(m.id)(m.x);
    pending.delete(m.id);
  });
  const call = (x) =>
    new Promise((resolve) => {
      pending.set(++id, resolve);
      child.send({ id, x });
    });
  const ready = call(0);
  return { child, call, ready };
}

const results = [];
/** `ours` and `theirs` are lists of per-round figures (or single figures). */
function report(what, oursRounds, theirsRounds, unit, peer, higherIsBetter) {
  const [os, ts] = [[oursRounds].flat(), [theirsRounds].flat()];
  const ours = median(os);
  const theirs = median(ts);
  const ratio = median(os.map((o, i) => (higherIsBetter ? o / ts[i] : ts[i] / o)));
  results.push({ what, ours, theirs, unit, peer, ratio });
  console.log(
    `${what.padEnd(44)} titan-pm ${ours.toFixed(1).padStart(9)} ${unit.padEnd(7)} ${peer.padEnd(14)} ${theirs.toFixed(1).padStart(9)} ${unit.padEnd(7)}` +
      ` ratio ${ratio.toFixed(2)} (${higherIsBetter ? 'ours/theirs' : 'theirs/ours'}, >= 1 is at least as good)`,
  );
}

/** p99 / p50 of sequential calls, ours and the peer's (target: <= 2 with everything on one vCPU). */
function tail(what, oursRounds, theirsRounds, peer) {
  const ratio = (rounds) => median(rounds.map((r) => r.p99 / r.p50)).toFixed(2);
  console.log(`${(what + ': p99 / p50').padEnd(44)} titan-pm ${ratio(oursRounds)} ${peer} ${ratio(theirsRounds)} (target <= 2 pinned)`);
}

/**
 * Spawn to first answer, p50 over SPAWNS spawns, titan-pm's and the peer's taking turns (one
 * spawn each, so both see the same load), each after a pause of SETTLE ms so that what the
 * previous one left running (a thread's teardown, titan-pm's next thread started ahead) is
 * not timed in it. titan-pm's come from one manager (after its first worker thread a manager
 * starts the next one ahead) or, with `cold`, each from a new manager (its first).
 */
async function spawnToFirstAnswer(isolation, peer, cold = false) {
  const ours = [];
  const theirs = [];
  let pm = new ProcessManager({ isolation, output: 'ignore', spin: SPIN });
  for (let i = 0; i < SPAWNS; i++) {
    if (cold && i > 0) pm = new ProcessManager({ isolation, output: 'ignore', spin: SPIN });
    await sleep(SETTLE);
    let t = now();
    const w = await pm.spawn(ECHO);
    await w.ping(1);
    ours.push(now() - t);
    await pm.kill(w);
    if (cold) await pm.shutdown();
    await sleep(SETTLE);
    t = now();
    if (peer === 'piscina') {
      const pool = new Piscina({ filename: path.join(__dirname, 'workers', 'piscina-echo.js'), minThreads: 1, maxThreads: 1 });
      await pool.run(1);
      theirs.push(now() - t);
      await pool.destroy();
    } else {
      const f = forkEcho();
      await f.ready;
      theirs.push(now() - t);
      f.child.kill();
    }
  }
  if (!cold) await pm.shutdown();
  return [quantile(ours, 0.5), quantile(theirs, 0.5)];
}

async function main() {
  const cpus = require('node:os').availableParallelism();
  console.log(
    `node ${process.version}; ${SEQUENTIAL} sequential calls and ${THROUGHPUT} calls with ${IN_FLIGHT} in flight, ` +
      `in ${ROUNDS} interleaved rounds; engine spin ${SPIN ?? 'default'}; ` +
      `${cpus} usable vCPU(s) of ${require('node:os').cpus().length} (${cpus === 1 ? 'pinned' : 'unpinned'}); ` +
      `load average ${require('node:os').loadavg().map((l) => l.toFixed(1)).join(' ')}\n`,
  );

  // ---- worker thread vs piscina ----
  if (part('thread') || part('pool') || part('buffer')) {
    const pm = new ProcessManager({ isolation: 'worker', output: 'ignore', spin: SPIN });
    const a = await pm.spawn(ECHO);
    const b = await pm.spawn(ECHO);
    const one = new Piscina({ filename: path.join(__dirname, 'workers', 'piscina-echo.js'), minThreads: 1, maxThreads: 1 });
    const two = new Piscina({ filename: path.join(__dirname, 'workers', 'piscina-echo.js'), minThreads: 2, maxThreads: 2 });
    if (part('thread')) {
      const [oursSeq, theirsSeq] = await turns(() => sequential((x) => a.ping(x)), () => sequential((x) => one.run(x)));
      report('worker thread: sequential p50', oursSeq.map((r) => r.p50), theirsSeq.map((r) => r.p50), 'us', 'piscina', false);
      report('worker thread: sequential p99', oursSeq.map((r) => r.p99), theirsSeq.map((r) => r.p99), 'us', 'piscina', false);
      tail('worker thread', oursSeq, theirsSeq, 'piscina');
      let rr = 0;
      const [oursTput, theirsTput] = await turns(
        () => throughput((x) => (rr++ & 1 ? a : b).ping(x)), // two workers, round-robin by hand
        () => throughput((x) => two.run(x)),
      );
      report(`worker thread: ${IN_FLIGHT} in flight, 2 threads`, oursTput, theirsTput, 'calls/s', 'piscina', true);
    }
    if (part('pool')) {
      // The core's pool with default options (least-connections, one running call per worker like piscina's
      // default, calls pipelined to busy workers).
      const pool = await pm.pool(ECHO, { size: 2, maxQueueSize: 1000 });
      const [poolTput, theirsTput2] = await turns(() => throughput((x) => pool.ping(x)), () => throughput((x) => two.run(x)));
      report(`pool of 2 (defaults): ${IN_FLIGHT} in flight`, poolTput, theirsTput2, 'calls/s', 'piscina', true);
    }
    // ---- Buffer round trips ----
    if (part('buffer')) {
      const SWEEP = [['100 B', 100, 400], ['10 KB', 10_000, 400], ['1 MB', 1 << 20, 40], ['16 MB', 16 << 20, 4]];
      for (const [label, size, n] of SWEEP) {
        const data = Buffer.alloc(size, 7);
        const back = await a.ping(data);
        if (!Buffer.isBuffer(back) || back.length !== size || back[size - 1] !== 7) throw new Error(`the ${label} Buffer did not come back whole`);
        const [ours, theirs] = await turns(() => bufferP50(() => a.ping(data), n), () => bufferP50(() => one.run(data), n));
        report(`worker thread: ${label} Buffer round trip p50`, ours, theirs, 'us', 'piscina', false);
      }
    }
    await pm.shutdown();
    await one.destroy();
    await two.destroy();
  }

  // ---- child process vs child_process IPC ----
  if (part('child')) {
    const cpm = new ProcessManager({ isolation: 'child', output: 'ignore', spin: SPIN });
    const c = await cpm.spawn(ECHO);
    const f = forkEcho();
    await f.ready;
    const [oursChild, theirsChild] = await turns(() => sequential((x) => c.ping(x)), () => sequential((x) => f.call(x)));
    report('child process: sequential p50', oursChild.map((r) => r.p50), theirsChild.map((r) => r.p50), 'us', 'fork+send', false);
    report('child process: sequential p99', oursChild.map((r) => r.p99), theirsChild.map((r) => r.p99), 'us', 'fork+send', false);
    tail('child process', oursChild, theirsChild, 'fork+send');
    const [oursChildTput, theirsChildTput] = await turns(() => throughput((x) => c.ping(x)), () => throughput((x) => f.call(x)));
    report(`child process: ${IN_FLIGHT} in flight, 1 child`, oursChildTput, theirsChildTput, 'calls/s', 'fork+send', true);
    // 1 MB Buffer: the peer's IPC with `serialization: 'advanced'` (structured clone; the default JSON would
    // turn the Buffer into an array of numbers).
    const g = forkEcho({ serialization: 'advanced' });
    await g.ready;
    const data = Buffer.alloc(1 << 20, 7);
    const back = await c.ping(data);
    if (!Buffer.isBuffer(back) || back.length !== data.length) throw new Error('the 1 MB Buffer did not come back whole from the child');
    const [oursBig, theirsBig] = await turns(() => bufferP50(() => c.ping(data), 40), () => bufferP50(() => g.call(data), 40));
    report('child process: 1 MB Buffer round trip p50', oursBig, theirsBig, 'us', 'fork+send', false);
    g.child.kill();
    await cpm.shutdown();
    f.child.kill();
  }

  // ---- spawn to first answered call ----
  if (part('spawn')) {
    report('spawn to first answer: worker thread (p50)', ...(await spawnToFirstAnswer('worker', 'piscina')), 'ms', 'piscina', false);
    report("  the same, each a new manager's first", ...(await spawnToFirstAnswer('worker', 'piscina', true)), 'ms', 'piscina', false);
    report('spawn to first answer: child process (p50)', ...(await spawnToFirstAnswer('child', 'fork')), 'ms', 'fork+send', false);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
