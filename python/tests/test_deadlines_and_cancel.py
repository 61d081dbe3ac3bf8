"""Every call has a deadline; when it passes (or the caller is cancelled)
the work in the worker is cancelled: an async method's asyncio task is
cancelled, as its `finally:` shows."""

import asyncio
import time

import pytest

from conftest import CALCULATOR, eventually, run
from titan_pm import CallTimeoutError, ProcessManager, TitanError
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_a_deadline_cancels_an_async_worker_method(tmp_path):
    marker = tmp_path / "slow.txt"
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR)
        start = time.monotonic()
        with pytest.raises(CallTimeoutError) as e:
            calc.with_options(timeout=0.3).slow(30, str(marker))
        assert 0.25 < time.monotonic() - start < 5.0
        assert isinstance(e.value, TimeoutError) and isinstance(e.value, TitanError)
        assert e.value.timeout == pytest.approx(0.3)
        assert eventually(lambda: marker.exists())
        assert marker.read_text() == "cancelled"
        assert calc.add(1, 1) == 2  # same worker, still serving
        assert pm.get_process(calc.process_id)["restarts"] == 0


def test_the_manager_and_spawn_deadlines_apply(tmp_path):
    async def main():
        async with ProcessManager(timeout=0.3) as pm:
            calc = await pm.spawn(CALCULATOR)
            with pytest.raises(TimeoutError):  # CallTimeoutError is a TimeoutError
                await calc.slow(30, str(tmp_path / "a.txt"))
            patient = await pm.spawn(CALCULATOR, timeout=10.0)
            assert await patient.slow(0.5, str(tmp_path / "b.txt")) == "finished"

    run(main())


def test_a_method_default_deadline_applies_unless_the_call_sets_one():
    with SyncProcessManager(timeout=30.0) as pm:
        calc = pm.spawn(CALCULATOR)
        start = time.monotonic()
        with pytest.raises(CallTimeoutError) as e:
            calc.bounded(30)  # @public(timeout=0.3)
        assert time.monotonic() - start < 5.0
        assert e.value.timeout == pytest.approx(0.3)
        assert calc.with_options(timeout=5.0).bounded(0.5) == 0.5


def test_cancelling_the_caller_cancels_the_remote_call(tmp_path):
    marker = tmp_path / "cancelled.txt"

    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            task = asyncio.ensure_future(calc.slow(30, str(marker)))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(250):
                if marker.exists():
                    break
                await asyncio.sleep(0.02)
            assert marker.read_text() == "cancelled"
            assert await calc.add(2, 3) == 5

    run(main())


def test_wait_for_around_a_call_cancels_it(tmp_path):
    marker = tmp_path / "wait_for.txt"

    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(calc.slow(30, str(marker)), 0.3)
            for _ in range(250):
                if marker.exists():
                    break
                await asyncio.sleep(0.02)
            assert marker.read_text() == "cancelled"

    run(main())


def test_a_signal_during_a_blocking_call_cancels_the_call(tmp_path):
    """Ctrl-C (here an alarm whose handler raises) interrupts a blocking call and cancels it in the worker."""
    import signal

    marker = tmp_path / "interrupted.txt"

    class Interrupted(Exception):
        pass

    def on_alarm(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with SyncProcessManager() as pm:
            calc = pm.spawn(CALCULATOR)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            start = time.monotonic()
            with pytest.raises(Interrupted):
                calc.slow(30, str(marker))
            assert time.monotonic() - start < 5.0
            assert eventually(lambda: marker.exists())
            assert marker.read_text() == "cancelled"
            assert calc.add(1, 2) == 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_sync_method_that_overruns_is_interrupted(tmp_path):
    from conftest import write_worker

    worker = write_worker(
        tmp_path,
        "spin.py",
        "from titan_pm import process, public\n"
        "@process(name='spin')\nclass Spin:\n"
        "    @public\n    def spin(self, marker):\n"
        "        try:\n            while True:\n                pass\n"
        "        finally:\n            open(marker, 'w').write('stopped')\n"
        "    @public\n    def ping(self):\n        return 'pong'\n",
    )
    marker = tmp_path / "spin.txt"
    with SyncProcessManager() as pm:
        spin = pm.spawn(worker)
        with pytest.raises(CallTimeoutError):
            spin.with_options(timeout=0.3).spin(str(marker))
        assert eventually(lambda: marker.exists())
        assert spin.ping() == "pong"
        assert pm.get_process(spin.process_id)["restarts"] == 0
