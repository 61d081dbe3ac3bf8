"""titan-pm from Python against multiprocessing and a raw socketpair, in one run.

    .venv/bin/python bench/python/bench.py        (or: bash bench/python/run.sh)

Sequential latency (p50/p99) of one small call to a Python child worker:
the blocking API and the asyncio API, against `multiprocessing.Pool(1).apply`
and a raw socketpair echo between two Python processes. Throughput with 64
calls in flight (asyncio) against one worker and against two workers
round-robin by hand, and a pool of two, against
`multiprocessing.Pool(2).map(chunksize=1)`. Spawn to first answered call.
Each line prints our figure, the peer's, and the ratio; targets from the brief.
The contestants run interleaved in several rounds (this machine's timings drift
a lot between seconds); figures and ratios are medians over the rounds.
"""

import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time

from titan_pm import ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "echo_worker.py")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 5))
SEQ = int(os.environ.get("BENCH_SEQ", 2000))
THROUGHPUT = int(os.environ.get("BENCH_CALLS", 12800))
SPAWNS = int(os.environ.get("BENCH_SPAWNS", 10))
IN_FLIGHT = 64
PAYLOAD = "x" * 16


def echo(x):
    return x


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]


def timed(fn, n, warmup=200):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def raw_socketpair():
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        while True:
            d = b.recv(64)
            if not d:
                os._exit(0)
            b.sendall(d)
    b.close()
    msg = PAYLOAD.encode()

    def once():
        a.sendall(msg)
        a.recv(64)

    samples = timed(once, SEQ)
    a.close()
    os.waitpid(pid, 0)
    return samples


def mp_apply():
    with mp.Pool(1) as pool:
        return timed(lambda: pool.apply(echo, (PAYLOAD,)), SEQ)


def mp_map_throughput():
    with mp.Pool(2) as pool:
        pool.map(echo, range(500), chunksize=1)
        t = time.perf_counter()
        pool.map(echo, [PAYLOAD] * THROUGHPUT, chunksize=1)
        return THROUGHPUT / (time.perf_counter() - t)


def titan_blocking():
    with SyncProcessManager(output="ignore") as pm:
        w = pm.spawn(WORKER)
        return timed(lambda: w.echo(PAYLOAD), SEQ)


async def titan_asyncio_sequential():
    async with ProcessManager(output="ignore") as pm:
        w = await pm.spawn(WORKER)
        for _ in range(200):
            await w.echo(PAYLOAD)
        out = []
        for _ in range(SEQ):
            t = time.perf_counter()
            await w.echo(PAYLOAD)
            out.append(time.perf_counter() - t)
        return out


async def titan_throughput(workers, pool=False):
    async with ProcessManager(output="ignore") as pm:
        if pool:
            # concurrency: calls pipelined to one worker (a Python worker still runs
            # sync methods one at a time); with 1 each worker idles for every round trip.
            handles = [await pm.pool(WORKER, size=workers, concurrency=IN_FLIGHT // workers, max_queue_size=IN_FLIGHT)]
            workers = 1
        else:
            handles = [await pm.spawn(WORKER) for _ in range(workers)]
        n = THROUGHPUT // IN_FLIGHT

        async def lane(i, count):
            h = handles[i % workers]
            for _ in range(count):
                await h.echo(PAYLOAD)

        await asyncio.gather(*(lane(i, 20) for i in range(IN_FLIGHT)))
        t = time.perf_counter()
        await asyncio.gather(*(lane(i, n) for i in range(IN_FLIGHT)))
        return n * IN_FLIGHT / (time.perf_counter() - t)


def spawn_to_first_answer():
    out = []
    with SyncProcessManager(output="ignore") as pm:
        for _ in range(SPAWNS):
            t = time.perf_counter()
            w = pm.spawn(WORKER)
            w.echo(1)
            out.append(time.perf_counter() - t)
            pm.kill(w.process_id)
    return out



def median(xs):
    return statistics.median(xs)


def main():
    print(f"titan-pm Python bench: {ROUNDS} rounds, each {SEQ} sequential calls and {THROUGHPUT} calls with "
          f"{IN_FLIGHT} in flight per contestant, interleaved; {SPAWNS} spawns "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print("each figure is the median over the rounds; each ratio the median of the per-round ratios\n")
    seq = {k: [] for k in ("raw", "pool1", "blocking", "asyncio")}
    p99 = {k: [] for k in seq}
    tput = {k: [] for k in ("mp2", "one", "two", "pool2")}
    for _ in range(ROUNDS):
        for k, samples in (
            ("raw", raw_socketpair()),
            ("pool1", mp_apply()),
            ("blocking", titan_blocking()),
            ("asyncio", asyncio.run(titan_asyncio_sequential())),
        ):
            seq[k].append(pct(samples, 0.5))
            p99[k].append(pct(samples, 0.99))
        tput["mp2"].append(mp_map_throughput())
        tput["one"].append(asyncio.run(titan_throughput(1)))
        tput["two"].append(asyncio.run(titan_throughput(2)))
        tput["pool2"].append(asyncio.run(titan_throughput(2, pool=True)))

    print("sequential, one small call to a Python child worker")
    names = {
        "raw": "raw socketpair echo",
        "pool1": "multiprocessing.Pool(1).apply",
        "blocking": "titan-pm blocking (sync API)",
        "asyncio": "titan-pm asyncio (await, one at a time)",
    }
    for k, name in names.items():
        print(f"  {name:<40} p50 {median(seq[k]) * 1e6:8.1f} us   p99 {median(p99[k]) * 1e6:8.1f} us")

    print(f"\nthroughput, {IN_FLIGHT} calls in flight")
    names = {
        "mp2": "multiprocessing.Pool(2).map(chunksize=1)",
        "one": "titan-pm asyncio, 1 worker",
        "two": "titan-pm asyncio, 2 workers round-robin",
        "pool2": "titan-pm asyncio, pool of 2 (concurrency 32)",
    }
    for k, name in names.items():
        print(f"  {name:<46} {median(tput[k]):10.0f} calls/s")

    print("\nspawn to first answered call (Python child, blocking API)")
    spawn = spawn_to_first_answer()
    print(f"  p50 {median(spawn) * 1e3:.1f} ms   max {max(spawn) * 1e3:.1f} ms")

    def r(a, b):
        return median([x / y for x, y in zip(a, b)])

    print("\nratios (targets from the brief, section 6)")
    print(f"  blocking p50 / Pool(1).apply p50       {r(seq['blocking'], seq['pool1']):5.2f}x   (target <= 0.5x)")
    print(f"  asyncio p50 / Pool(1).apply p50        {r(seq['asyncio'], seq['pool1']):5.2f}x")
    print(f"  blocking p50 / raw socketpair p50      {r(seq['blocking'], seq['raw']):5.2f}x")
    print(f"  pool of 2 / Pool(2).map throughput     {r(tput['pool2'], tput['mp2']):5.2f}x   (target >= 1.5x)")
    print(f"  2 workers / Pool(2).map throughput     {r(tput['two'], tput['mp2']):5.2f}x")
    print(f"  1 worker / Pool(2).map throughput      {r(tput['one'], tput['mp2']):5.2f}x")
    print(f"  spawn to first answer p50              {median(spawn) * 1e3:5.1f} ms (target <= 150 ms)")


if __name__ == "__main__":
    main()
