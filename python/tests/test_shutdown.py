"""Shutdown drains in-flight calls, runs @on_shutdown hooks, and stops the
workers; leaving `async with` / `with` does it; a dead host leaves no orphans."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

from conftest import CALCULATOR, alive, eventually, run
from titan_pm import ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_on_shutdown_runs_when_the_manager_shuts_down(tmp_path):
    marker = tmp_path / "shutdown.txt"

    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR, dependencies={"shutdown_file": str(marker)})
            pid = pm.get_process(calc.process_id)["pid"]
            assert await calc.add(1, 1) == 2
            assert not marker.exists()
        return pid

    pid = run(main())
    assert marker.read_text() == "shutdown hook ran"
    assert eventually(lambda: not alive(pid))


def test_shutdown_drains_calls_in_flight(tmp_path):
    marker = tmp_path / "drain.txt"

    async def main():
        pm = ProcessManager()
        calc = await pm.spawn(CALCULATOR, dependencies={"shutdown_file": str(marker)})
        call = asyncio.ensure_future(calc.sleep(0.5))
        await asyncio.sleep(0.1)
        await pm.shutdown()
        assert await call == 0.5
        assert marker.exists()
        assert pm.list_processes()[0]["state"] == "stopped"

    run(main())


def test_the_blocking_manager_shuts_down_on_leaving_the_block(tmp_path):
    marker = tmp_path / "sync.txt"
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR, dependencies={"shutdown_file": str(marker)})
        pid = calc.pid()
    assert marker.read_text() == "shutdown hook ran"
    assert eventually(lambda: not alive(pid))


def test_workers_exit_when_their_host_is_killed(tmp_path):
    host = tmp_path / "host.py"
    host.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from titan_pm.sync import ProcessManager
            pm = ProcessManager()
            calc = pm.spawn({CALCULATOR!r})
            print(calc.pid(), flush=True)
            time.sleep(60)
            """
        )
    )
    p = subprocess.Popen([sys.executable, str(host)], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(p.stdout.readline())
        assert alive(worker_pid)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        assert eventually(lambda: not alive(worker_pid), limit=5.0), "the worker outlived its host"
    finally:
        p.kill()
