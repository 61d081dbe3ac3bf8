"""Remote Python workers: `python -m titan_pm.worker --connect ...` started by the
test (as Kubernetes or systemd would) dials a host that listens with mutual TLS
(certificates from scripts/make-certs.sh), joins `remote:py`, serves a pool,
fails its in-flight call at once when killed, and rejoins when started again."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, WORKERS, run
from titan_pm import ConfigError, ProcessCrashedError, ProcessManager

WORKER = str(WORKERS / "remote_worker.py")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/make-certs.sh needs it)")
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(REPO / "scripts" / "make-certs.sh"), str(d)], check=True, capture_output=True, timeout=60)
    return d


def dial(addr, certs, token="t0ken", name="py"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    args = [sys.executable, "-m", "titan_pm.worker", "--connect", addr, "--name", name, "--token", token]
    args += ["--tls-cert", str(certs / "worker.crt"), "--tls-key", str(certs / "worker.key"), "--tls-ca", str(certs / "ca.crt")]
    return subprocess.Popen(args + [WORKER], env=env, stdin=subprocess.DEVNULL)


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait(timeout=10)


def test_python_workers_dial_in_over_mtls_and_serve_a_pool(certs):
    async def main():
        async with ProcessManager() as pm:
            tls = {"cert": str(certs / "host.crt"), "key": str(certs / "host.key"), "ca": str(certs / "ca.crt")}
            addr = await pm.listen("127.0.0.1:0", tls=tls, token="t0ken")
            workers = [dial(addr, certs), dial(addr, certs)]
            try:
                pool = await pm.pool("remote:py", min=2, request_timeout=30)
                assert await pool.add(2, 3) == 5
                pids = set()
                deadline = time.monotonic() + 30
                while len(pids) < 2 and time.monotonic() < deadline:
                    pids.add(await pool.pid())
                assert pids == {w.pid for w in workers}

                # Kill one with a call in flight: that call fails at once.
                calls = [asyncio.ensure_future(pool.sleep(5)) for _ in range(2)]
                await asyncio.sleep(0.5)
                killed = time.monotonic()
                workers[0].kill()
                done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_EXCEPTION, timeout=20)
                crashed = [c for c in done if c.exception() is not None]
                assert len(crashed) == 1 and isinstance(crashed[0].exception(), ProcessCrashedError)
                assert "disconnected" in str(crashed[0].exception())
                assert time.monotonic() - killed < 2.5
                assert await pool.add(1, 1) == 2  # the other serves
                assert await asyncio.wait_for(asyncio.gather(*[c for c in calls if c not in crashed]), 20) == ["slept"]

                # Restarted, it rejoins.
                workers[0].wait(timeout=10)
                workers[0] = dial(addr, certs)
                deadline = time.monotonic() + 30
                while workers[0].pid not in {await pool.pid() for _ in range(4)}:
                    assert time.monotonic() < deadline, "the restarted worker did not rejoin"
                    await asyncio.sleep(0.05)
                await pool.destroy()
            finally:
                for w in workers:
                    stop(w)

    run(main(), timeout=120)


def test_listen_refuses_plain_tcp_beyond_loopback_and_bad_options(certs):
    async def main():
        async with ProcessManager() as pm:
            with pytest.raises(ConfigError, match="only on loopback"):
                await pm.listen("0.0.0.0:0", token="x")
            with pytest.raises(ConfigError, match="a token is required"):
                await pm.listen("127.0.0.1:0")
            with pytest.raises(ConfigError, match=r"tls.ca: is required"):
                await pm.listen("127.0.0.1:0", tls={"cert": str(certs / "host.crt"), "key": str(certs / "host.key")})
            with pytest.raises(ConfigError, match=r"tls.cafile: unknown option"):
                await pm.listen("127.0.0.1:0", tls={"cert": "a", "key": "b", "ca": "c", "cafile": "d"})

    run(main())


def test_a_python_worker_drains_on_sigterm(certs):
    async def main():
        async with ProcessManager() as pm:
            addr = await pm.listen("127.0.0.1:0", token="t0ken")
            env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
            env.update(TITAN_PM_CONNECT=addr, TITAN_PM_NAME="solo", TITAN_PM_TOKEN="t0ken")
            w = subprocess.Popen([sys.executable, "-m", "titan_pm.worker", WORKER], env=env, stdin=subprocess.DEVNULL)
            try:
                one = await pm.attach("remote:solo")
                assert await one.add(20, 22) == 42
                slow = asyncio.ensure_future(one.sleep(1.5))
                await asyncio.sleep(0.3)
                w.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(slow, 20) == "slept"
                assert await asyncio.get_running_loop().run_in_executor(None, lambda: w.wait(timeout=20)) == 0
            finally:
                stop(w)

    run(main(), timeout=90)


@pytest.mark.parametrize("engine", ["caller", "thread"])
def test_the_blocking_manager_listens_and_attaches(certs, engine):
    from titan_pm import sync

    with sync.ProcessManager(engine=engine) as pm:
        with pytest.raises(ConfigError, match="only on loopback"):
            pm.listen("0.0.0.0:0", token="x")
        tls = {"cert": str(certs / "host.crt"), "key": str(certs / "host.key"), "ca": str(certs / "ca.crt")}
        addr = pm.listen("127.0.0.1:0", tls=tls, token="t0ken")
        assert addr.startswith("127.0.0.1:") and not addr.endswith(":0")
        workers = [dial(addr, certs, name="sync")]
        try:
            one = pm.attach("remote:sync")
            assert one.add(20, 22) == 42
            assert one.pid() == workers[0].pid
            workers.append(dial(addr, certs, name="sync"))
            pool = pm.pool("remote:sync", size=1, request_timeout=30)
            assert pool.pid() == workers[1].pid, "the pool took the worker the attached process did not"
            # Killed (from another thread) with a call in flight: that call fails at once.
            killer = threading.Timer(0.5, workers[0].kill)
            killer.start()
            started = time.monotonic()
            with pytest.raises(ProcessCrashedError, match="disconnected"):
                one.sleep(5)
            assert time.monotonic() - started < 4
            killer.join()
            assert pool.add(1, 1) == 2
            pool.destroy()
        finally:
            for w in workers:
                stop(w)
