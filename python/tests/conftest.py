"""Shared pieces of the Python tests: worker paths, a bounded asyncio runner,
and helpers that poll with generous limits (a hang fails, it never blocks)."""

import asyncio
import os
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
WORKERS = HERE / "workers"
CALCULATOR = str(WORKERS / "calculator.py")
REPO = HERE.parent.parent

# Restarts that do not make the tests wait.
FAST_RESTARTS = {"initial_backoff": 0.02}


def run(coro, timeout=60):
    """Runs `coro` on a fresh event loop; a hang fails after `timeout` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def eventually(cond, limit=10.0):
    """Polls `cond` every 20 ms until it holds or `limit` seconds pass."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def alive(pid):
    """True while `pid` is a live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def write_worker(tmp_path, name, source):
    p = tmp_path / name
    p.write_text(source)
    return str(p)


def workspace_binary(name):
    """A binary of the Rust workspace, built by scripts/test-python.sh (cargo build --workspace)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        exe = target / profile / name
        if exe.exists():
            return str(exe)
    pytest.fail(f"no {name} under {target}: run `cargo build --workspace` first")


@pytest.fixture
def rust_calculator():
    """The Rust example worker."""
    return workspace_binary("rust-calculator")


@pytest.fixture
def titan_pm_cli():
    """The `titan-pm` command-line tool (the crate cli/)."""
    return workspace_binary("titan-pm")
