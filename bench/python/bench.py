"""titan-pm from Python against multiprocessing and a raw socketpair, in one run.

    .venv/bin/python bench/python/bench.py        (or: bash bench/python/run.sh)

Sequential latency (p50/p99) of one small call to a Python child worker:
the blocking API and the asyncio API, against `multiprocessing.Pool(1).apply`
and a raw socketpair echo between two Python processes. Throughput with 64
calls in flight (asyncio) against one worker and against two workers
round-robin by hand, and a pool of two, against
`multiprocessing.Pool(2).map(chunksize=1)`. Spawn to first answered call.
Each line prints our figure, the peer's, and the ratio; targets from the brief.
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
SEQ = int(os.environ.get("BENCH_SEQ", 5000))
THROUGHPUT = int(os.environ.get("BENCH_CALLS", 20000))
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


def report(name, samples):
    print(f"  {name:<38} p50 {pct(samples, 0.5) * 1e6:8.1f} us   p99 {pct(samples, 0.99) * 1e6:8.1f} us")
    return pct(samples, 0.5)


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



def main():
    print(f"titan-pm Python bench: {SEQ} sequential calls, {THROUGHPUT} calls with {IN_FLIGHT} in flight, "
          f"{SPAWNS} spawns (python {sys.version.split()[0]}, {os.cpu_count()} cpus)\n")
    print("sequential, one small call to a Python child worker")
    raw = report("raw socketpair echo", raw_socketpair())
    pool1 = report("multiprocessing.Pool(1).apply", mp_apply())
    blocking = report("titan-pm blocking (sync API)", titan_blocking())
    aio = report("titan-pm asyncio (await, one at a time)", asyncio.run(titan_asyncio_sequential()))

    print(f"\nthroughput, {IN_FLIGHT} calls in flight")
    mp2 = mp_map_throughput()
    print(f"  {'multiprocessing.Pool(2).map(chunksize=1)':<44} {mp2:10.0f} calls/s")
    one = asyncio.run(titan_throughput(1))
    print(f"  {'titan-pm asyncio, 1 worker':<44} {one:10.0f} calls/s")
    two = asyncio.run(titan_throughput(2))
    print(f"  {'titan-pm asyncio, 2 workers round-robin':<44} {two:10.0f} calls/s")
    pool2 = asyncio.run(titan_throughput(2, pool=True))
    print(f"  {'titan-pm asyncio, pool of 2 (concurrency 32)':<44} {pool2:10.0f} calls/s")

    print("\nspawn to first answered call (Python child, blocking API)")
    spawn = spawn_to_first_answer()
    print(f"  p50 {statistics.median(spawn) * 1e3:.1f} ms   max {max(spawn) * 1e3:.1f} ms")

    print("\nratios (targets from the brief, section 6)")
    print(f"  blocking p50 / Pool(1).apply p50      {blocking / pool1:5.2f}x   (target <= 0.5x)")
    print(f"  asyncio p50 / Pool(1).apply p50       {aio / pool1:5.2f}x")
    print(f"  blocking p50 / raw socketpair p50     {blocking / raw:5.2f}x")
    print(f"  pool of 2 / Pool(2).map throughput    {pool2 / mp2:5.2f}x   (target >= 1.5x)")
    print(f"  2 workers / Pool(2).map throughput    {two / mp2:5.2f}x")
    print(f"  1 worker / Pool(2).map throughput     {one / mp2:5.2f}x")
    print(f"  spawn to first answer p50             {statistics.median(spawn) * 1e3:5.1f} ms (target <= 150 ms)")


if __name__ == "__main__":
    main()
