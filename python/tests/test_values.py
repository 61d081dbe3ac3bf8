"""The value mapping: what crosses as what, and a `SerializationError` naming
the path of anything else, raised before anything is sent. A worker return
value it cannot encode fails that call and the worker keeps serving."""

import asyncio
import gc
import hashlib
import os
import random
import signal
import sys

import pytest

from conftest import CALCULATOR, FAST_RESTARTS, eventually, run
from titan_pm import ProcessCrashedError
from titan_pm import ProcessManager, SerializationError
from titan_pm._native import roundtrip
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_every_supported_value_survives_the_trip():
    value = {
        "none": None,
        "bool": True,
        "int": -(2**63),
        "big": 2**63 - 1,
        "float": 1.5,
        "str": "héllo",
        "bytes": b"\x00\xff",
        "list": [1, [2, []]],
        "dict": {"nested": {"x": 1}},
    }
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR)
        assert calc.echo(value) == value
        assert calc.echo((1, "a")) == [1, "a"]  # a tuple arrives as a list
        assert calc.echo(bytearray(b"ab")) == b"ab"
        assert calc.echo(True) is True


def test_unsupported_arguments_name_their_path():
    with pytest.raises(SerializationError) as e:
        roundtrip({"items": [1, 2, 3, {4}]})
    assert e.value.path == 'value["items"][3]'
    assert "set" in str(e.value)

    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR)
        with pytest.raises(SerializationError) as e:
            calc.echo(1, {"items": [0, 1, 2, object()]})
        assert e.value.path == 'args[1]["items"][3]'
        with pytest.raises(SerializationError, match="64 bits") as e:
            calc.echo(2**64)
        assert e.value.path == "args[0]"
        with pytest.raises(SerializationError, match="keys must be str"):
            calc.echo({1: "x"})
        # Nothing was sent: the worker saw no request.
        assert pm.get_metrics(calc.process_id)["requests"] == 0
        assert calc.add(1, 2) == 3


def test_an_unserializable_return_value_fails_the_call_and_the_worker_keeps_serving():
    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            pid = await calc.pid()
            with pytest.raises(SerializationError) as e:
                await calc.bad_return()
            assert e.value.path == 'result["ok"][2]'
            assert await calc.add(2, 2) == 4
            assert await calc.pid() == pid
            with pytest.raises(SerializationError):
                await calc.echo({"x": float}, 1)

    run(main())


def test_large_bytes_round_trip_and_the_callers_object_outlives_the_call_and_the_worker(tmp_path):
    # Over the size the native layer lends instead of copying (SHARE_DATA_BYTES):
    # the core reads the caller's own bytes object while the call is written.
    data = random.Random(16).randbytes(1_500_000)
    digest = hashlib.sha256(data).digest()
    refs = sys.getrefcount(data)
    assert roundtrip(data) == data
    marker = tmp_path / "received"

    async def main():
        async with ProcessManager(restart_policy=FAST_RESTARTS) as pm:
            calc = await pm.spawn(CALCULATOR)
            back = await calc.echo([data, b"small", data])
            assert back == [data, b"small", data] and back[0] is not data
            # Killed while its call holds the value.
            call = asyncio.ensure_future(calc.hold(data, str(marker)))
            for _ in range(500):
                if marker.exists() and marker.read_text():
                    break
                await asyncio.sleep(0.02)
            assert marker.read_text() == str(len(data))
            os.kill(pm.get_process(calc.process_id)["pid"], signal.SIGKILL)
            with pytest.raises(ProcessCrashedError):
                await call
            assert hashlib.sha256(data).digest() == digest
            assert await calc.echo(data) == data  # the restarted worker

    run(main())
    assert hashlib.sha256(data).digest() == digest and len(data) == 1_500_000
    # Every reference the core took is given back (a drop off the interpreter is
    # applied when the native module is next entered, as `roundtrip` does; the
    # crashed call's traceback holds its arguments in a cycle only gc frees).
    assert eventually(lambda: gc.collect() >= 0 and roundtrip(None) is None and sys.getrefcount(data) == refs), (
        f"{sys.getrefcount(data) - refs} references to the caller's bytes were kept"
    )
