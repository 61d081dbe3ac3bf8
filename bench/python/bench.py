"""titan-pm from Python against multiprocessing and a raw socketpair, in one run.

    .venv/bin/python bench/python/bench.py        (or: bash bench/python/run.sh)

Sequential latency (p50/p99) of one small call to a Python child worker:
the blocking API and the asyncio API, against `multiprocessing.Pool(1).apply`
and a raw socketpair echo between two Python processes. Throughput with 64
calls in flight (asyncio): pools of 1, 2 and 4 workers **with default options**
against `multiprocessing.Pool(n).map(chunksize=1)` of the same size, one worker,
two workers round-robin by hand. Round trips of `bytes` of 100 B, 10 KB, 1 MB
and 16 MB against `multiprocessing.Pool(1).apply`. Spawn to first answered call
against a fork-context `multiprocessing` worker. Ray, when it is importable
(it is not installed by the project), as one more peer; else a note says so.
Each line prints our figure, the peer's, and the ratio; targets from the brief.
The contestants run interleaved in several rounds (this machine's timings drift
a lot between seconds); figures and ratios are medians over the rounds.
Pin everything to one vCPU with `taskset -c 0 bash bench/python/run.sh`.
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
SEQ = int(os.environ.get("BENCH_SEQ", 2000))
THROUGHPUT = int(os.environ.get("BENCH_CALLS", 12800))
SPAWNS = int(os.environ.get("BENCH_SPAWNS", 10))
# Which parts run (comma-separated): seq, pool, bytes, spawn; all by default.
ONLY = set(os.environ.get("BENCH_ONLY", "seq,pool,bytes,spawn").split(","))
IN_FLIGHT = 64
PAYLOAD = "x" * 16
POOL_SIZES = (1, 2, 4)
# (label, bytes, round trips per round)
SWEEP = (("100 B", 100, 400), ("10 KB", 10_000, 400), ("1 MB", 1 << 20, 40), ("16 MB", 16 << 20, 4))


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


def mp_map_throughput(n=2):
    with mp.Pool(n) as pool:
        pool.map(echo, range(500), chunksize=1)
        t = time.perf_counter()
        pool.map(echo, [PAYLOAD] * THROUGHPUT, chunksize=1)
        return THROUGHPUT / (time.perf_counter() - t)


def mp_bytes(size, n):
    data = os.urandom(size)
    with mp.Pool(1) as pool:
        pool.apply(echo, (data,))
        return timed(lambda: pool.apply(echo, (data,)), n, warmup=2)


def titan_bytes(size, n):
    data = os.urandom(size)
    with SyncProcessManager(output="ignore") as pm:
        w = pm.spawn(WORKER)
        assert w.echo(data) == data
        return timed(lambda: w.echo(data), n, warmup=2)


def mp_fork_spawn():
    ctx = mp.get_context("fork")
    out = []
    for _ in range(SPAWNS):
        t = time.perf_counter()
        with ctx.Pool(1) as pool:
            pool.apply(echo, (1,))
            out.append(time.perf_counter() - t)
    return out


def ray_figures():
    """Ray's actor call p50 and 64-in-flight throughput over 2 actors, or None when Ray is not importable."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return None
    import ray

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actors = [Echo.remote() for _ in range(2)]
        ray.get([a.echo.remote(1) for a in actors])
        seq = timed(lambda: ray.get(actors[0].echo.remote(PAYLOAD)), SEQ // 4, warmup=50)
        n = THROUGHPUT // 4
        t = time.perf_counter()
        pending = [actors[i % 2].echo.remote(PAYLOAD) for i in range(IN_FLIGHT)]
        done = 0
        sent = IN_FLIGHT
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done += 1
            if sent < n:
                pending.append(actors[sent % 2].echo.remote(PAYLOAD))
                sent += 1
        return pct(seq, 0.5), n / (time.perf_counter() - t)
    finally:
        ray.shutdown()


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


async def titan_throughput(workers, pool=False, **options):
    async with ProcessManager(output="ignore") as pm:
        if pool:
            # Default options (a member runs one call at a time, calls pipelined to it), unless given.
            handles = [await pm.pool(WORKER, size=workers, max_queue_size=IN_FLIGHT, **options)]
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


def spawn_to_first_answer(**options):
    out = []
    with SyncProcessManager(output="ignore", **options) as pm:
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
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"{len(os.sched_getaffinity(0))} usable: {'pinned' if len(os.sched_getaffinity(0)) == 1 else 'unpinned'})")
    print("each figure is the median over the rounds; each ratio the median of the per-round ratios\n")
    seq = {k: [] for k in ("raw", "pool1", "blocking", "asyncio")}
    p99 = {k: [] for k in seq}
    tput = {k: [] for k in ("one", "two", "pool2_c32")}
    for n in POOL_SIZES:
        tput[f"mp{n}"] = []
        tput[f"pool{n}"] = []
    big = {label: {"mp": [], "titan": []} for label, _, _ in SWEEP}
    spawns = {"fork_server": [], "fresh": [], "mp_fork": []}
    for _ in range(ROUNDS):
        if "seq" in ONLY:
            for k, samples in (
                ("raw", raw_socketpair()),
                ("pool1", mp_apply()),
                ("blocking", titan_blocking()),
                ("asyncio", asyncio.run(titan_asyncio_sequential())),
            ):
                seq[k].append(pct(samples, 0.5))
                p99[k].append(pct(samples, 0.99))
        if "pool" in ONLY:
            for n in POOL_SIZES:
                tput[f"mp{n}"].append(mp_map_throughput(n))
                tput[f"pool{n}"].append(asyncio.run(titan_throughput(n, pool=True)))
            tput["one"].append(asyncio.run(titan_throughput(1)))
            tput["two"].append(asyncio.run(titan_throughput(2)))
            tput["pool2_c32"].append(asyncio.run(titan_throughput(2, pool=True, concurrency=IN_FLIGHT // 2)))
        if "bytes" in ONLY:
            for label, size, count in SWEEP:
                big[label]["mp"].append(pct(mp_bytes(size, count), 0.5))
                big[label]["titan"].append(pct(titan_bytes(size, count), 0.5))
        if "spawn" in ONLY:
            spawns["fork_server"].append(statistics.median(spawn_to_first_answer()))
            spawns["fresh"].append(statistics.median(spawn_to_first_answer(fork_server=False)))
            spawns["mp_fork"].append(statistics.median(mp_fork_spawn()))

    if "seq" in ONLY:
        print_seq(seq, p99)
    if "pool" in ONLY:
        print_pool(tput)
    if "bytes" in ONLY:
        print_bytes(big)
    if "spawn" in ONLY:
        print_spawn(spawns)
    ray = ray_figures() if {"seq", "pool"} <= ONLY else None
    if ray is None:
        print("\nray: not importable here (or seq/pool not run), skipped (pip install ray to include it)")
    r = r_
    print("\nratios (> 1: titan-pm better for throughput; <= target for latency)")
    if "seq" in ONLY:
        print(f"  blocking p50 / Pool(1).apply p50       {r(seq['blocking'], seq['pool1']):5.2f}x   (target <= 0.5x)")
        print(f"  asyncio p50 / Pool(1).apply p50        {r(seq['asyncio'], seq['pool1']):5.2f}x")
        print(f"  blocking p50 / raw socketpair p50      {r(seq['blocking'], seq['raw']):5.2f}x")
        print(f"  p99 / p50 (target <= 2 with everything on one vCPU): blocking {r(p99['blocking'], seq['blocking']):.2f}, "
              f"asyncio {r(p99['asyncio'], seq['asyncio']):.2f}; Pool(1).apply {r(p99['pool1'], seq['pool1']):.2f}, "
              f"raw {r(p99['raw'], seq['raw']):.2f}")
    if "pool" in ONLY:
        for n in POOL_SIZES:
            target = "   (target >= 1.5x)" if n == 2 else ""
            print(f"  pool of {n} (defaults) / Pool({n}).map     {r(tput[f'pool{n}'], tput[f'mp{n}']):5.2f}x{target}")
        print(f"  pool of 2, concurrency 32 / Pool(2).map {r(tput['pool2_c32'], tput['mp2']):5.2f}x")
        print(f"  2 workers / Pool(2).map throughput     {r(tput['two'], tput['mp2']):5.2f}x")
        print(f"  1 worker / Pool(2).map throughput      {r(tput['one'], tput['mp2']):5.2f}x")
    if "spawn" in ONLY:
        print(f"  spawn to first answer p50 (fork server) {median(spawns['fork_server']) * 1e3:5.1f} ms (target <= 15 ms); "
              f"mp fork / titan-pm {r(spawns['mp_fork'], spawns['fork_server']):5.2f}x; "
              f"fresh interpreter / fork server {r(spawns['fresh'], spawns['fork_server']):5.2f}x")
    if ray is not None:
        print(f"  ray actor p50 {ray[0] * 1e6:.1f} us; titan-pm blocking p50 / ray  {median(seq['blocking']) / ray[0]:5.2f}x")
        print(f"  pool of 2 / ray (2 actors) throughput  {median(tput['pool2']) / ray[1]:5.2f}x")


def print_seq(seq, p99):
    print("sequential, one small call to a Python child worker")
    names = {
        "raw": "raw socketpair echo",
        "pool1": "multiprocessing.Pool(1).apply",
        "blocking": "titan-pm blocking (sync API)",
        "asyncio": "titan-pm asyncio (await, one at a time)",
    }
    for k, name in names.items():
        print(f"  {name:<40} p50 {median(seq[k]) * 1e6:8.1f} us   p99 {median(p99[k]) * 1e6:8.1f} us")


def print_pool(tput):
    print(f"\nthroughput, {IN_FLIGHT} calls in flight")
    names = {}
    for n in POOL_SIZES:
        names[f"mp{n}"] = f"multiprocessing.Pool({n}).map(chunksize=1)"
        names[f"pool{n}"] = f"titan-pm asyncio, pool of {n}, default options"
    names.update({
        "pool2_c32": "titan-pm asyncio, pool of 2, concurrency 32",
        "one": "titan-pm asyncio, 1 worker",
        "two": "titan-pm asyncio, 2 workers round-robin",
    })
    for k, name in names.items():
        print(f"  {name:<46} {median(tput[k]):10.0f} calls/s")


def print_bytes(big):
    print("\nbytes round trip (blocking call vs multiprocessing.Pool(1).apply), p50")
    for label, _, _ in SWEEP:
        t, m = median(big[label]["titan"]), median(big[label]["mp"])
        print(f"  {label:>6}   titan-pm {t * 1e3:8.3f} ms   mp.Pool {m * 1e3:8.3f} ms   ratio {r_(big[label]['mp'], big[label]['titan']):5.2f}x")



def print_spawn(spawns):
    print("\nspawn to first answered call (Python child, blocking API; peer: a fork-context mp.Pool(1)); p50 of the rounds' p50s")
    print(f"  titan-pm, fork server (default)  {median(spawns['fork_server']) * 1e3:7.1f} ms")
    print(f"  titan-pm, fork_server=False      {median(spawns['fresh']) * 1e3:7.1f} ms")
    print(f"  mp fork Pool(1)                  {median(spawns['mp_fork']) * 1e3:7.1f} ms")


def r_(a, b):
    return median([x / y for x, y in zip(a, b)])


if __name__ == "__main__":
    main()
