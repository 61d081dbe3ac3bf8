"""Errors: every kind is a class exported from titan_pm deriving from
TitanError; a remote built-in exception is both that built-in and
RemoteError, with the remote type and traceback; missing and non-public
methods name the public ones."""

import builtins

import pytest

import titan_pm
from conftest import CALCULATOR, run
from titan_pm import MethodNotFoundError, ProcessManager, RemoteError, TitanError
from titan_pm.sync import ProcessManager as SyncProcessManager

KINDS = [
    "RemoteError",
    "ProcessCrashedError",
    "ProcessFailedError",
    "CallTimeoutError",
    "MethodNotFoundError",
    "SerializationError",
    "SpawnError",
    "PoolBackpressureError",
    "CircuitOpenError",
]


def test_every_error_kind_is_exported_and_derives_from_titan_error():
    for name in KINDS:
        cls = getattr(titan_pm, name)
        assert issubclass(cls, TitanError), name
    assert issubclass(titan_pm.CallTimeoutError, TimeoutError)


@pytest.mark.parametrize("kind", ["ValueError", "KeyError", "TypeError"])
def test_a_remote_builtin_exception_is_reraised_as_that_type(kind):
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR)
        with pytest.raises(getattr(builtins, kind)) as e:
            calc.fail(kind, "bad input")
        err = e.value
        assert isinstance(err, RemoteError) and isinstance(err, TitanError)
        assert err.remote_type == kind
        assert "bad input" in str(err)
        assert "in fail" in err.remote_traceback and kind in err.remote_traceback


def test_a_custom_remote_exception_is_a_remote_error_with_its_type(tmp_path):
    from conftest import write_worker

    worker = write_worker(
        tmp_path,
        "custom.py",
        "from titan_pm import process, public\n"
        "class InsufficientFunds(Exception):\n    pass\n"
        "@process(name='bank')\nclass Bank:\n"
        "    @public\n    def withdraw(self, n):\n        raise InsufficientFunds(f'cannot withdraw {n}')\n",
    )
    with SyncProcessManager() as pm:
        bank = pm.spawn(worker)
        with pytest.raises(RemoteError) as e:
            bank.withdraw(5)
        assert type(e.value) is RemoteError
        assert e.value.remote_type == "InsufficientFunds"
        assert str(e.value) == "InsufficientFunds: cannot withdraw 5"


def test_missing_and_non_public_methods_name_the_public_ones():
    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            for method in ("nope", "not_public", "init", "check"):
                with pytest.raises(MethodNotFoundError) as e:
                    await calc.call(method)
                assert e.value.method == method
                assert "add" in e.value.available and "fibonacci" in e.value.available
                assert "not_public" not in e.value.available
                assert method in str(e.value)
            assert await calc.add(1, 1) == 2  # the worker is fine

    run(main())


def test_bad_options_are_config_errors_at_once():
    from titan_pm import ConfigError
    from titan_pm.sync import ProcessManager as Sync

    for make in (ProcessManager, Sync):
        with pytest.raises(ConfigError, match="timeout"):
            make(timeout=-1)
        with pytest.raises(ConfigError, match="unknown option"):
            make(timout=1.0)
        with pytest.raises(ConfigError, match="unknown transport"):
            make(transport="pigeon")
        with pytest.raises(ConfigError, match="unknown isolation"):
            make(isolation="vm")
    with pytest.raises(ConfigError, match="unknown pool strategy"):
        with Sync() as pm:
            pm.pool(CALCULATOR, strategy="fastest")
