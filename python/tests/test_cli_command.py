"""The `titan-pm` command that `pip install titan-pm` puts next to the interpreter
(`[project.scripts]`, `titan_pm._cli`): it lists a Python host's workers, and it
starts a daemon from a process file (a new interpreter in its own session, not a
fork of this one), which `ls` sees and `stop` ends, leaving no process behind."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CALCULATOR, alive, eventually
from titan_pm.sync import ProcessManager as SyncProcessManager


@pytest.fixture
def installed_cli():
    """The installed `titan-pm` script of this interpreter's environment."""
    exe = Path(sys.executable).parent / "titan-pm"
    if not exe.exists():
        found = shutil.which("titan-pm")
        assert found, f"no titan-pm command next to {sys.executable} (pip install ./python)"
        exe = Path(found)
    return str(exe)


def cli(exe, sock, *args, ok=True):
    r = subprocess.run([exe, "--socket", sock, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if ok:
        assert r.returncode == 0, f"titan-pm {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}"
    return r


def test_the_installed_command_is_the_python_entry(installed_cli):
    head = Path(installed_cli).read_text().splitlines()[0]
    assert head.startswith("#!") and "python" in head, head
    r = subprocess.run([installed_cli, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("titan-pm "), r
    bad = subprocess.run([installed_cli, "lss"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unrecognized subcommand 'lss'" in bad.stderr, bad


def test_ls_json_against_a_python_host(tmp_path, installed_cli):
    sock = str(tmp_path / "ctl" / "control.sock")
    with SyncProcessManager(engine="thread", isolation="child") as pm:
        pm.spawn(CALCULATOR, name="calc")
        with pm.serve_control(sock):
            listing = json.loads(cli(installed_cli, sock, "ls", "--json").stdout)
            assert [(p["name"], p["state"]) for p in listing] == [("calc", "running")]
            assert json.loads(cli(installed_cli, sock, "call", "calc", "add", "5", "3").stdout) == 8
    gone = cli(installed_cli, sock, "ls", ok=False)
    assert gone.returncode == 1 and "no manager is serving" in gone.stderr, gone


def test_start_ls_stop_a_process_file(tmp_path, installed_cli):
    run_dir = tmp_path / "run"
    sock = str(run_dir / "control.sock")
    (tmp_path / "titan.toml").write_text(
        f"""
[manager]
resources = {{ timeout = 20000 }}

[[process]]
name = "calc"
script = "{CALCULATOR}"

[[pool]]
name = "pool"
script = "{CALCULATOR}"
size = 2
"""
    )
    # No `python` in [manager]: the daemon runs .py workers with this interpreter, and
    # the environment's PATH has no python3 that could import titan_pm otherwise.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"
    pid_file = run_dir / "titan-pm.pid"
    daemon = None
    try:
        r = subprocess.run(
            [installed_cli, "--socket", sock, "start", str(tmp_path / "titan.toml")],
            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, f"start failed: {r.stdout}{r.stderr}\nlog: {(run_dir / 'titan-pm.log').read_text() if (run_dir / 'titan-pm.log').exists() else ''}"
        assert "started: calc, pool" in r.stdout, r.stdout
        daemon = int(pid_file.read_text())
        assert alive(daemon)
        with open(f"/proc/{daemon}/stat") as f:
            session = int(f.read().rsplit(")", 1)[1].split()[3])
        assert session == daemon, "the daemon leads a session of its own"
        with open(f"/proc/{daemon}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert b"titan_pm._cli" in argv and b"--no-daemon" in argv, argv

        listing = json.loads(cli(installed_cli, sock, "ls", "--json").stdout)
        assert sorted(p["name"] for p in listing) == ["calc", "pool", "pool"], listing
        assert all(p["state"] == "running" for p in listing), listing
        assert json.loads(cli(installed_cli, sock, "call", "pool", "add", "2", "3").stdout) == 5
        workers = [p["pid"] for p in listing]

        assert "manager stopped" in cli(installed_cli, sock, "stop").stdout
        assert eventually(lambda: not alive(daemon) and not any(alive(p) for p in workers), limit=30), "every process exits"
        assert not os.path.exists(sock) and not pid_file.exists()
    finally:
        if daemon is not None and alive(daemon):
            os.kill(daemon, 9)
