"""A Python host drives the Rust example worker (examples/rust-calculator). (The trace
from a Python host through a Rust worker to Node and Python workers is tested in
node/test/cross-language.test.js, where the Node fixtures are compiled.)"""

import pytest

from conftest import run
from titan_pm import ProcessManager, RemoteError
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_a_python_host_calls_the_rust_calculator(rust_calculator):
    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(rust_calculator)
            assert await calc.add(5, 3) == 8
            info = pm.get_process(calc.process_id)
            assert info["name"] == "calculator" and info["state"] == "running"
            assert await calc.multiply(4, 5) == 20
            with pytest.raises(ValueError) as e:
                await calc.call("raise", "from rust")
            assert isinstance(e.value, RemoteError) and e.value.remote_type == "ValueError"
            assert "from rust" in str(e.value)
            assert (await pm.get_health(calc.process_id))["checks"][0]["name"] == "served"

    run(main())


def test_the_blocking_api_calls_the_rust_calculator(rust_calculator):
    with SyncProcessManager(transport="unix") as pm:
        calc = pm.spawn(rust_calculator)
        assert [calc.add(i, 1) for i in range(3)] == [1, 2, 3]

