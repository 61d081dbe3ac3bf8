"""A Python host drives the Rust example worker (examples/rust-calculator), and one trace
runs from a Python host through a Rust worker to a Node and a Python worker."""

import os
from pathlib import Path

import pytest

from conftest import REPO, WORKERS, run
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


def _test_worker():
    exe = os.environ.get("TITAN_TEST_RUST_WORKER")
    if exe:
        return exe
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    exe = target / "debug" / "test-worker"
    if not exe.exists():
        pytest.fail(f"no test-worker under {target}: run `cargo build --workspace` first")
    return str(exe)


NODE_POLICIES = REPO / "node" / "test" / "build" / "standard" / "policies.js"


@pytest.mark.skipif(not NODE_POLICIES.exists(), reason="the Node fixtures are not compiled (scripts/test-node.sh does)")
def test_one_trace_from_a_python_host_through_a_rust_worker_to_node_and_python_workers():
    """Python host -> Rust worker -> (Node worker, Python worker): the Rust worker calls
    the processes it was given; each leaf returns its own call's trace context."""
    with SyncProcessManager() as pm:
        node = pm.spawn(str(NODE_POLICIES))
        py = pm.spawn(str(WORKERS / "worker_side_policies.py"))
        rust = pm.spawn(_test_worker(), processes={"node": node.process_id, "py": py.process_id})
        via_node = rust.trace_via("node", "traced")
        via_py = rust.trace_via("py", "trace")
        for r, leaf in ((via_node, via_node["theirs"]), (via_py, via_py["theirs"])):
            mine = r["mine"]
            assert len(mine["traceId"]) == 32 and mine["parentSpanId"] == "", r
            trace_id = leaf.get("traceId", leaf.get("trace_id"))
            parent = leaf.get("parentSpanId", leaf.get("parent_span_id"))
            assert trace_id == mine["traceId"], f"one trace through all three: {r}"
            assert parent == mine["spanId"], f"the leaf's span is a child of the Rust worker's: {r}"
        assert via_node["mine"]["traceId"] != via_py["mine"]["traceId"], "each host call is a trace of its own"
