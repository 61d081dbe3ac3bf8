"""Pools from Python: calls spread over the workers by the strategy, the pool
scales, reports metrics and events, refuses calls past its queue, and replaces
a worker that dies."""

import asyncio
import os
import signal

import pytest

from conftest import CALCULATOR, eventually, run
from titan_pm import PoolBackpressureError, ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_a_pool_spreads_calls_and_scales():
    async def main():
        async with ProcessManager() as pm:
            pool = await pm.pool(CALCULATOR, size=2, strategy="round-robin")
            events = []
            pool.on("*", lambda e: events.append(e))
            assert pool.size == 2
            assert await pool.add(1, 2) == 3
            pids = {await pool.pid() for _ in range(6)}
            assert len(pids) == 2
            results = await asyncio.gather(*(pool.multiply(i, 2) for i in range(100)))
            assert results == [2 * i for i in range(100)]
            await pool.scale(3)
            assert pool.size == 3
            m = await pool.metrics()
            assert m["size"] == 3 and m["requests"] >= 107 and len(m["workers"]) == 3
            await asyncio.sleep(0.1)
            assert {"type": "pool:scaled", "from": 2, "to": 3} in events
            await pool.destroy()

    run(main())


def test_a_full_queue_refuses_at_once():
    async def main():
        async with ProcessManager() as pm:
            pool = await pm.pool(CALCULATOR, size=1, concurrency=1, max_queue_size=1)
            running = asyncio.ensure_future(pool.sleep(1.0))
            await asyncio.sleep(0.2)
            queued = asyncio.ensure_future(pool.sleep(0.0))
            await asyncio.sleep(0.1)
            with pytest.raises(PoolBackpressureError):
                await pool.add(1, 1)
            assert await running == 1.0 and await queued == 0.0

    run(main())


def test_a_pool_replaces_a_worker_that_dies():
    with SyncProcessManager() as pm:
        pool = pm.pool(CALCULATOR, size=2, strategy="round-robin")
        events = []
        pool.on("*", events.append)
        victim = pool.metrics()["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            pool.poll_events()
            pids = [w["pid"] for w in pool.metrics()["workers"]]
            return len(pids) == 2 and victim not in pids

        assert eventually(replaced)
        assert "worker:crashed" in [e["type"] for e in events]
        assert [pool.add(i, 1) for i in range(4)] == [1, 2, 3, 4]
        assert pool.with_options(key="user-1").add(2, 2) == 4


def test_pool_options_use_the_issue_names_and_unknown_ones_are_errors():
    from titan_pm import ConfigError

    async def main():
        async with ProcessManager() as pm:
            pool = await pm.pool(
                CALCULATOR,
                size=1,
                auto_scale={"min": 1, "max": 2, "target_cpu": 90, "cooldown_period": 0.5},
                circuit_breaker={"enabled": False, "threshold": 1},
            )
            assert await pool.add(1, 2) == 3
            assert (await pool.metrics())["breaker"] is None, "enabled=False leaves the breaker off"
            await pool.destroy()
            with pytest.raises(ConfigError, match="cooldown_perio"):
                await pm.pool(CALCULATOR, size=1, auto_scale={"cooldown_perio": 1})

    run(main())


def test_pools_pipeline_by_default_and_pipeline_is_an_option():
    async def main():
        async with ProcessManager() as pm:
            pool = await pm.pool(CALCULATOR, size=1)
            # Many light calls at once on one member of concurrency 1: all answered, in any order.
            assert await asyncio.gather(*(pool.add(i, 1) for i in range(50))) == [i + 1 for i in range(50)]
            await pool.destroy()
            off = await pm.pool(CALCULATOR, size=1, pipeline=0)
            assert await asyncio.gather(*(off.add(i, 1) for i in range(10))) == [i + 1 for i in range(10)]
            await off.destroy()
            from titan_pm import ConfigError

            with pytest.raises(ConfigError, match="pipeline"):
                await pm.pool(CALCULATOR, size=1, pipeline=-1)

    run(main())
