"""Workflows from Python: the seed's ComplexWorkflow and OrderSaga as Python
twins, retries with backoff, timeouts, load errors and the journal."""

import asyncio
import os
import sys

import pytest

from conftest import WORKERS, run
from titan_pm import ConfigError, ProcessManager, WorkflowError, stage, workflow

sys.path.insert(0, str(WORKERS))
import workflows as W  # noqa: E402

WORKFLOWS = str(WORKERS / "workflows.py")


async def until(cond, limit=5.0):
    """Awaits (letting the loop run) until `cond()` holds or `limit` seconds pass."""
    for _ in range(int(limit / 0.02)):
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def test_complex_workflow_runs_c_and_d_together_and_e_sees_both():
    W.LOG.clear()

    async def main():
        async with ProcessManager() as pm:
            wf = await pm.workflow(W.ComplexWorkflow)
            events = []
            wf.on("*", events.append)
            result = await wf.run({"n": 1}, run_id="c1")
            assert list(result) == ["A", "B", "C", "D", "E"]
            assert result["A"]["saw"] == {"n": 1}
            assert set(result["C"]["saw"]) == {"A", "B"}
            assert result["E"]["saw"]["C"]["stage"] == "C" and result["E"]["saw"]["D"]["stage"] == "D"
            spans = {name: (start, end) for name, start, end in W.LOG}
            (c0, c1), (d0, d1), (e0, _) = spans["C"], spans["D"], spans["E"]
            assert c0 < d1 and d0 < c1, "C and D did not overlap"
            assert e0 >= max(c1, d1)
            assert await until(lambda: any(e["type"] == "workflow:completed" for e in events))
            assert sum(e["type"] == "stage:completed" for e in events) == 5
            assert events[0]["type"] == "workflow:started" and events[0]["run_id"] == "c1"
            # The same id: the stored result, nothing runs.
            ran = len(W.LOG)
            assert await wf.run({"n": 1}, run_id="c1") == result
            assert len(W.LOG) == ran

    run(main())


def test_order_saga_compensates_in_reverse_order():
    W.LOG.clear()

    async def main():
        async with ProcessManager() as pm:
            wf = await pm.workflow(W.OrderSaga)
            with pytest.raises(WorkflowError) as info:
                await wf.run({"id": 42}, run_id="order-42")
            e = info.value
            assert e.stage == "charge-payment" and e.kind == "remote"
            assert "card declined" in str(e.cause) and e.cause.remote_type == "PaymentDeclined"
            assert [c["method"] for c in e.compensations] == ["refundPayment", "releaseInventory", "cancelOrder"]
            assert all(c["error"] is None for c in e.compensations)
            assert W.LOG == [
                ("refundPayment", None, "remote"),
                ("releaseInventory", {"reservation": "r-1"}),
                ("cancelOrder", {"order_id": 42}),
            ]
            runs = await wf.runs()
            assert runs[0]["run_id"] == "order-42" and runs[0]["state"] == "failed"
            assert (await pm.workflow_runs())[0]["run_id"] == "order-42"

    run(main())


def test_order_saga_in_a_child_worker(tmp_path):
    log = tmp_path / "log"

    async def main():
        async with ProcessManager() as pm:
            wf = await pm.workflow(WORKFLOWS + ":OrderSaga", isolation="child", env={"TITAN_WORKFLOW_LOG": str(log)})
            assert pm.get_process(wf.process_id)["pid"] != os.getpid()
            with pytest.raises(WorkflowError) as info:
                await wf.run({"id": 7})
            assert info.value.stage == "charge-payment"
            lines = log.read_text().splitlines()
            assert [eval(line)[0] for line in lines] == ["refundPayment", "releaseInventory", "cancelOrder"]

    run(main())


def test_a_stage_failing_twice_succeeds_on_its_third_attempt_after_backoff():
    W.Flaky.attempts.clear()

    async def main():
        async with ProcessManager() as pm:
            wf = await pm.workflow(W.Flaky, retry_backoff={"initial": 0.1, "max": 5.0})
            result = await wf.run(None, run_id="f1")
            assert result["flaky"] == {"attempt": 3, "key": "f1/flaky"}
            a = W.Flaky.attempts
            assert len(a) == 3 and a[1] - a[0] >= 0.05 and a[2] - a[1] >= 0.1

    run(main())


def test_a_stage_exceeding_its_timeout_fails_with_kind_timeout_and_is_cancelled():
    W.LOG.clear()

    async def main():
        async with ProcessManager() as pm:
            wf = await pm.workflow(W.Slow, retry_backoff={"initial": 0.01})
            with pytest.raises(WorkflowError) as info:
                await wf.run(None)
            assert info.value.kind == "timeout" and info.value.stage == "slow"
            assert await until(lambda: W.LOG.count(("cancelled",)) == 2), W.LOG

    run(main())


def test_a_cycle_or_an_unknown_dependency_is_an_error_at_load():
    @workflow
    class Loop:
        @stage(name="a", depends_on="b")
        def a(self, input): ...

        @stage(name="b", depends_on="a")
        def b(self, input): ...

    @workflow
    class Dangling:
        @stage(name="a", depends_on="fetch-user")
        def a(self, input): ...

    async def main():
        async with ProcessManager() as pm:
            with pytest.raises(ConfigError, match=r"stages a, b form a cycle \(a -> b -> a\)"):
                await pm.workflow(Loop)
            with pytest.raises(ConfigError, match='stage "a" depends on unknown stage "fetch-user"'):
                await pm.workflow(Dangling)
            assert pm.list_processes() == []

    run(main())
    with pytest.raises(ValueError, match="retries"):
        stage(name="x", retries=-1)


def test_a_journaled_run_is_returned_by_a_new_manager(tmp_path):
    W.LOG.clear()
    journal = str(tmp_path / "runs.db")

    async def main():
        async with ProcessManager(workflows={"journal": journal}) as pm:
            wf = await pm.workflow(W.ComplexWorkflow)
            first = await wf.run(5, run_id="durable")
        ran = len(W.LOG)
        async with ProcessManager(workflows={"journal": journal}) as pm:
            wf = await pm.workflow(W.ComplexWorkflow)
            assert await wf.run(5, run_id="durable") == first
        assert len(W.LOG) == ran

    run(main())


def test_the_blocking_manager_runs_workflows():
    """`titan_pm.sync.ProcessManager.workflow` mirrors the asyncio one: the same engine,
    results, saga, stored runs and events (delivered on this thread when `run` returns)."""
    from titan_pm.sync import ProcessManager as SyncProcessManager

    W.LOG.clear()
    with SyncProcessManager() as pm:
        wf = pm.workflow(W.ComplexWorkflow)
        assert wf.stages == ["A", "B", "C", "D", "E"]
        events = []
        wf.on("*", events.append)
        result = wf.run({"n": 1}, run_id="sync-c1")
        assert list(result) == ["A", "B", "C", "D", "E"]
        assert set(result["C"]["saw"]) == {"A", "B"}
        spans = {name: (start, end) for name, start, end in W.LOG}
        (c0, c1), (d0, d1) = spans["C"], spans["D"]
        assert c0 < d1 and d0 < c1, "C and D did not overlap"
        assert events[0]["type"] == "workflow:started" and events[0]["run_id"] == "sync-c1"
        assert sum(e["type"] == "stage:completed" for e in events) == 5
        assert events[-1]["type"] == "workflow:completed"
        ran = len(W.LOG)
        assert wf.run({"n": 1}, run_id="sync-c1") == result  # stored: nothing runs
        assert len(W.LOG) == ran

        W.LOG.clear()
        saga = pm.workflow(W.OrderSaga)
        with pytest.raises(WorkflowError) as info:
            saga.run({"id": 7}, run_id="sync-order-7")
        e = info.value
        assert e.stage == "charge-payment" and e.kind == "remote"
        assert [c["method"] for c in e.compensations] == ["refundPayment", "releaseInventory", "cancelOrder"]
        assert W.LOG == [
            ("refundPayment", None, "remote"),
            ("releaseInventory", {"reservation": "r-1"}),
            ("cancelOrder", {"order_id": 7}),
        ]
        assert saga.runs()[0]["run_id"] == "sync-order-7" and saga.runs()[0]["state"] == "failed"
        assert {r["run_id"]: r["state"] for r in pm.workflow_runs()} == {"sync-c1": "completed", "sync-order-7": "failed"}

        with pytest.raises(ConfigError, match="unknown workflow event"):
            wf.on("stage:done", print)


def test_the_blocking_manager_refuses_a_cyclic_workflow_at_load():
    from titan_pm.sync import ProcessManager as SyncProcessManager

    @workflow
    class Cyclic:
        @stage(name="a", depends_on="b")
        def a(self, input):
            return 1

        @stage(name="b", depends_on="a")
        def b(self, input):
            return 2

    with SyncProcessManager() as pm:
        with pytest.raises(ConfigError, match=r"stages a, b form a cycle \(a -> b -> a\)"):
            pm.workflow(Cyclic)
        assert pm.list_processes() == []


def test_a_run_resumes_on_a_new_host_after_the_first_is_killed_mid_stage(tmp_path):
    """SIGKILL a Python host during stage 3; a new host on the same journal and
    run id does not run stages 1-2 again, runs 3 (again: at least once) and 4;
    the same id once more returns the stored result and runs nothing."""
    import json
    import signal
    import subprocess
    import time

    host = str(WORKERS / "workflow_host.py")
    journal, log = str(tmp_path / "runs.db"), tmp_path / "stages.log"

    def lines():
        return log.read_text().splitlines() if log.exists() else []

    def run_host():
        out = subprocess.run([sys.executable, host, journal, "order-7", str(log)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])

    first = subprocess.Popen([sys.executable, host, journal, "order-7", str(log), "hang"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(lines()) < 3 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
        assert len(lines()) == 3, f"the first host never reached stage 3: {lines()}"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert lines() == ["s1 order-7/s1", "s2 order-7/s2", "s3 order-7/s3"]

    result = run_host()  # waits out the dead host's 1 s lease, then resumes
    assert lines() == ["s1 order-7/s1", "s2 order-7/s2", "s3 order-7/s3", "s3 order-7/s3", "s4 order-7/s4"]
    assert result == {"s1": "s1 done", "s2": "s2 done", "s3": "s3 done", "s4": "s4 done"}

    assert run_host() == result  # the stored result: nothing runs
    assert len(lines()) == 5
