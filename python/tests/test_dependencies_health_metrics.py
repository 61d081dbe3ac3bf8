"""Spawn dependencies reach `init` by keyword; health comes from the
worker's @health_check (or is healthy without one); metrics count calls."""

import time

from conftest import CALCULATOR, run, write_worker
from titan_pm import ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_dependencies_reach_init():
    config = {"db": "postgres://x", "pool": [1, 2], "flags": {"fast": True}}
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR, dependencies={"config": config})
        assert calc.get_config() == config
        plain = pm.spawn(CALCULATOR)
        assert plain.get_config() is None


def test_async_init_receives_dependencies(tmp_path):
    worker = write_worker(
        tmp_path,
        "asyncinit.py",
        "import asyncio\nfrom titan_pm import process, public\n"
        "@process(name='a')\nclass A:\n"
        "    async def init(self, greeting, name='world'):\n"
        "        await asyncio.sleep(0.01)\n        self.text = f'{greeting}, {name}'\n"
        "    @public\n    def hello(self):\n        return self.text\n",
    )
    with SyncProcessManager() as pm:
        assert pm.spawn(worker, dependencies={"greeting": "hi"}).hello() == "hi, world"


def test_health_comes_from_the_health_check():
    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            before = int(time.time() * 1000)
            h = await pm.get_health(calc.process_id)
            assert h["status"] == "degraded"
            assert h["checks"] == [{"name": "disk", "status": "warn", "message": "almost full"}]
            assert before - 5000 <= h["timestamp"] <= int(time.time() * 1000) + 5000

    run(main())


def test_health_is_answered_while_a_slow_sync_method_runs(tmp_path):
    worker = write_worker(
        tmp_path,
        "busy.py",
        "import time\nfrom titan_pm import process, public, health_check\n"
        "@process(name='busy')\nclass Busy:\n"
        "    @public\n    def block(self, s):\n        time.sleep(s)\n        return s\n"
        "    @public\n    def quick(self):\n        return 1\n"
        "    @health_check\n    def check(self):\n        return 'healthy'\n",
    )

    async def main():
        async with ProcessManager() as pm:
            busy = await pm.spawn(worker)
            for _ in range(5):
                await busy.quick()  # quick enough to run on the agent's thread
            blocked = asyncio.ensure_future(busy.block(3.0))
            await asyncio.sleep(0.3)
            start = time.monotonic()
            h = await pm.get_health(busy.process_id)
            took = time.monotonic() - start
            assert h["status"] == "healthy"
            assert took < 2.0, f"the health probe waited {took:.2f} s behind a sync call"
            assert await blocked == 3.0

    import asyncio

    run(main())


def test_a_worker_without_a_health_check_is_healthy(rust_calculator):
    with SyncProcessManager() as pm:
        calc = pm.spawn(rust_calculator)
        assert pm.get_health(calc.process_id)["status"] == "healthy"


def test_metrics_count_requests_errors_and_latency():
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR)
        for i in range(10):
            calc.add(i, i)
        try:
            calc.fail("ValueError", "x")
        except ValueError:
            pass
        m = pm.get_metrics(calc.process_id)
        assert m["requests"] == 11 and m["errors"] == 1
        assert m["memory"] > 1_000_000
        assert m["cpu"] >= 0.0
        assert 0 < m["latency"]["p50"] <= m["latency"]["p95"] <= m["latency"]["p99"]
        assert m["latency"]["p50"] < 5000  # ms
