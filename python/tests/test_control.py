"""A Python host serves the control socket: the `titan-pm` CLI lists its workers,
calls one, and `titan-pm stop` shuts the manager down, which the host sees."""

import asyncio
import json
import subprocess

import pytest

from conftest import CALCULATOR, run
from titan_pm import ConfigError, ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager


def cli(exe, sock, *args):
    r = subprocess.run([exe, "--socket", sock, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"titan-pm {' '.join(args)} failed: {r.stdout}{r.stderr}"
    return r.stdout


def test_blocking_host_serves_the_cli(tmp_path, titan_pm_cli):
    sock = str(tmp_path / "ctl" / "control.sock")
    with SyncProcessManager(engine="thread", isolation="child") as pm:
        pm.spawn(CALCULATOR, name="calc")
        server = pm.serve_control(sock)
        assert server.path == sock
        listing = json.loads(cli(titan_pm_cli, sock, "--json", "ls"))
        assert [p["name"] for p in listing] == ["calc"]
        assert json.loads(cli(titan_pm_cli, sock, "call", "calc", "add", "5", "3")) == 8
        assert not server.is_shutdown_requested()
        cli(titan_pm_cli, sock, "stop")
        assert server.wait_shutdown_requested(timeout=30)
        server.close()


def test_blocking_host_on_the_callers_thread_refuses_with_a_reason(tmp_path):
    with SyncProcessManager() as pm:
        with pytest.raises(ConfigError, match='engine="thread"'):
            pm.serve_control(str(tmp_path / "control.sock"))


def test_asyncio_host_serves_the_cli(tmp_path, titan_pm_cli):
    sock = str(tmp_path / "control.sock")

    async def main():
        async with ProcessManager() as pm:
            await pm.spawn(CALCULATOR, name="calc")
            with pm.serve_control(sock) as server:
                # The CLI runs in a thread: the host's loop keeps running (and answering) meanwhile.
                out = await asyncio.to_thread(cli, titan_pm_cli, sock, "--json", "ls")
                assert [p["name"] for p in json.loads(out)] == ["calc"]
                await asyncio.to_thread(cli, titan_pm_cli, sock, "stop")
                await asyncio.wait_for(server.shutdown_requested(), 30)

    run(main())


def test_a_second_server_on_the_same_socket_is_refused(tmp_path):
    sock = str(tmp_path / "control.sock")
    with SyncProcessManager(engine="thread") as pm:
        with pm.serve_control(sock):
            with pytest.raises(ConfigError, match="already serves"):
                pm.serve_control(sock)
