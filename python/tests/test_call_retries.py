"""`with_options(retries=n)`: a call whose worker crashes waits for the restart and
is sent again (at most n times, within its deadline); without it the crash fails
the call; a worker's own error is never retried; a bad value is a ConfigError
naming `retries`. The worker counts its calls in a file that outlives crashes."""

import pytest

from conftest import CALCULATOR, FAST_RESTARTS, run
from titan_pm import ConfigError, ProcessCrashedError, ProcessManager
from titan_pm import _native
from titan_pm.sync import ProcessManager as SyncProcessManager


def calls_in(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def test_a_crashed_call_is_retried_after_the_restart_asyncio(tmp_path):
    async def main():
        async with ProcessManager(restart_policy=FAST_RESTARTS, output="ignore") as pm:
            calc = await pm.spawn(CALCULATOR)
            path = str(tmp_path / "calls")
            assert await calc.with_options(retries=1, timeout=20.0).crash_first(path, 1) == 2
            assert calls_in(path) == 2
            assert pm.get_process(calc.process_id)["restarts"] == 1
            # Typed calls carry the option too.
            assert await calc.with_options(retries=1).call("crash_first", path, 3) == 4

            # Without retries the crash fails the call, once.
            with pytest.raises(ProcessCrashedError):
                await calc.crash_first(path, 5)
            assert calls_in(path) == 5

            # The worker's own error is not retried.
            own = str(tmp_path / "own")
            with pytest.raises(ValueError, match="failed on purpose"):
                await calc.with_options(retries=3).fail_counted(own)
            assert calls_in(own) == 1

    run(main())


def test_a_crashed_call_is_retried_after_the_restart_blocking(tmp_path):
    with SyncProcessManager(restart_policy=FAST_RESTARTS, output="ignore") as pm:
        calc = pm.spawn(CALCULATOR)
        path = str(tmp_path / "calls")
        assert calc.with_options(retries=2, timeout=20.0).crash_first(path, 2) == 3
        assert calls_in(path) == 3
        with pytest.raises(ProcessCrashedError):
            calc.with_options(retries=0).crash_first(path, 4)
        assert calls_in(path) == 4
        own = str(tmp_path / "own")
        with pytest.raises(ValueError):
            calc.with_options(retries=3).fail_counted(own)
        assert calls_in(own) == 1


def test_a_pool_call_takes_retries_too(tmp_path):
    with SyncProcessManager(restart_policy=FAST_RESTARTS, output="ignore") as pm:
        pool = pm.pool(CALCULATOR, size=2)
        path = str(tmp_path / "calls")
        assert pool.with_options(retries=1).crash_first(path, 1) == 2


BAD = [-1, 1.5, "2", True]


def test_a_bad_retries_is_a_config_error_naming_it():
    with SyncProcessManager(output="ignore") as pm:
        calc = pm.spawn(CALCULATOR)
        for bad in BAD:
            with pytest.raises(ConfigError, match=r"retries: must be a whole number >= 0"):
                calc.with_options(retries=bad)
        assert calc.add(1, 2) == 3

    async def main():
        async with ProcessManager(output="ignore") as pm:
            calc = await pm.spawn(CALCULATOR)
            pool = await pm.pool(CALCULATOR, size=1)
            for bad in BAD:
                for handle in (calc, pool):
                    with pytest.raises(ConfigError, match=r"retries: must be a whole number >= 0"):
                        handle.with_options(retries=bad)

    run(main())


@pytest.mark.parametrize("manager", [ProcessManager, SyncProcessManager])
def test_with_options_takes_exactly_cores_call_options(manager):
    """Drift: the keywords of `with_options` (handles and pools) are core's call option schema."""
    import inspect

    core = sorted(_native.option_schema("call"))
    assert core == ["key", "retries", "timeout"]
    for cls in (manager.__module__,):
        module = __import__(cls, fromlist=["ProcessHandle", "Pool"])
        for handle in (module.ProcessHandle, module.Pool):
            params = inspect.signature(handle.with_options).parameters
            assert sorted(p for p in params if p != "self") == core, handle
