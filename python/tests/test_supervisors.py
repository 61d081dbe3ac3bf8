"""Supervisors from Python (one representative case; the strategies are tested in
depth in cargo): a decorated class starts in declaration order, one-for-one
restarts only the child that died, its handle survives, and bad options are
ConfigErrors naming the path."""

import asyncio
import os
import signal
import sys

import pytest

from titan_pm import ConfigError, ProcessManager, SupervisionStrategy, child, supervisor

HERE = os.path.dirname(os.path.abspath(__file__))
CALC = os.path.join(HERE, "workers", "calculator.py")


@supervisor(strategy=SupervisionStrategy.ONE_FOR_ONE, max_restarts=3, window=60.0,
            backoff={"type": "exponential", "initial": 0.02, "max": 0.1})
class App:
    database = child(CALC, critical=True)
    api = child(CALC)
    analytics = child(CALC, optional=True)


def test_one_for_one_restarts_only_the_child_that_died():
    async def main():
        async with ProcessManager() as pm:
            sup = await pm.supervisor(App)
            assert sup.state == "running"
            rows = sup.children()
            assert [r["name"] for r in rows] == ["database", "api", "analytics"]
            names = {p["name"] for p in pm.list_processes()}
            assert {"App/database", "App/api", "App/analytics"} <= names
            pids = {r["name"]: pm.get_process(r["process_id"])["pid"] for r in rows}
            api = await sup.child("api")
            os.kill(pids["api"], signal.SIGKILL)
            for _ in range(500):
                rows = sup.children()
                if rows[1]["restarts"] == 1 and rows[1]["state"] == "running":
                    break
                await asyncio.sleep(0.02)
            assert [r["restarts"] for r in rows] == [0, 1, 0]
            assert await api.add(2, 3) == 5  # the same handle, after the restart
            after = {r["name"]: pm.get_process(r["process_id"])["pid"] for r in rows}
            assert after["database"] == pids["database"] and after["analytics"] == pids["analytics"]
            assert after["api"] != pids["api"]
            await sup.stop()
            assert sup.state == "stopped"

    asyncio.run(main())


def test_bad_supervisor_options_name_the_path():
    @supervisor(max_restarts=1)
    class Bad:
        a = child(CALC)
        b = child(CALC, pool={"sise": 2})

    async def main():
        async with ProcessManager() as pm:
            with pytest.raises(ConfigError, match=r"children\[1\]\.pool\.sise: unknown option"):
                await pm.supervisor(Bad)

    asyncio.run(main())
    with pytest.raises(TypeError):
        child(42)
