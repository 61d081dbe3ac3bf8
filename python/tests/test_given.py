"""Processes given to Python workers (inject_process, the `processes` spawn
option) and @SharedState (shared_state): the order service calls the user
service with a host handle's API and error kinds, across the user service's
restart, and reaches nothing it was not given; 4 pool members x 250 parallel
increments end at 1000."""

import asyncio
import os
import signal

import pytest

from conftest import FAST_RESTARTS, WORKERS, run
from titan_pm import ProcessManager, SpawnError, child, supervisor

FILE = str(WORKERS / "composition.py")
USERS, ORDERS, COUNTER = f"{FILE}:UserService", f"{FILE}:OrderService", f"{FILE}:Counter"


def test_an_order_service_calls_its_injected_user_service_across_a_restart_and_nothing_else():
    async def main():
        async with ProcessManager(restart_policy=FAST_RESTARTS) as pm:
            users = await pm.spawn(USERS)
            other = await pm.spawn(USERS)
            orders = await pm.spawn(ORDERS, processes={"users": users.process_id})
            assert await orders.place(7) == {"order": 70, "user": {"id": 7, "name": "user-7", "lang": "python"}}
            # The sync form blocks on the worker's call thread.
            assert (await orders.place_sync(3))["user"]["name"] == "user-3"

            # The host's error kinds reach the worker as they would reach a host.
            r = await orders.attempt("users", "fail", "boom")
            assert r["error"] == "RemoteValueError" and r["remote_type"] == "ValueError" and "boom" in r["message"], r
            r = await orders.attempt("users", "nope")
            assert r["error"] == "MethodNotFoundError", r
            r = await orders.slow_users(0.3)
            assert r == {"error": "CallTimeoutError"}, r

            # Only what it was given: "other" exists but was not given under that name.
            r = await orders.attempt("other", "get_user", 1)
            assert r["error"] == "ConfigError", r
            assert 'no process named "other" was given to this worker (given: users)' in r["message"], r
            assert await other.get_user(1)  # it runs; the order service just cannot reach it

            # The injected handle survives the user service's restart (same process id, new pid).
            old = await orders.users_pid()
            crashed = asyncio.get_running_loop().create_future()
            pm.on("crash", lambda e: crashed.done() or crashed.set_result(e))
            os.kill(old, signal.SIGKILL)
            await asyncio.wait_for(crashed, 20)
            new = await orders.users_pid()
            assert new != old
            assert (await orders.place(2))["user"]["id"] == 2

    run(main())


def test_four_pool_members_incrementing_shared_state_250_times_each_end_at_1000():
    async def main():
        async with ProcessManager() as pm:
            pool = await pm.pool(COUNTER, size=4, max_queue_size=1000)
            results = await asyncio.gather(*(pool.incr() if i % 2 else pool.incr_sync() for i in range(1000)))
            values = sorted(v for v, _ in results)
            assert values == list(range(1, 1001)), "every increment saw a value of its own: none lost"
            assert len({pid for _, pid in results}) == 4, "all four members incremented"
            assert await pool.get() == 1000
            # Held by the host: a process of the same class spawned later reads it too.
            later = await pm.spawn(COUNTER)
            assert await later.get() == 1000
            assert await later.label_roundtrip("x") == ["none", "x"]

    run(main())


@supervisor(strategy="one-for-one", backoff={"type": "exponential", "initial": 0.02, "max": 0.1})
class Composed:
    db = child(USERS)
    api = child(f"{FILE}:Api", inject=["db"])


def test_a_supervised_child_whose_async_init_calls_its_injected_earlier_sibling_starts():
    async def main():
        async with ProcessManager() as pm:
            sup = await pm.supervisor(Composed)
            api = await sup.child("api")
            assert await api.first_user() == {"id": 1, "name": "user-1", "lang": "python"}

    run(main())


@pytest.mark.parametrize("isolation", ["worker", "none"])
def test_a_worker_in_the_host_process_calls_a_given_process(isolation):
    async def main():
        async with ProcessManager() as pm:
            users = await pm.spawn(USERS)
            orders = await pm.spawn(ORDERS, isolation=isolation, processes={"users": users.process_id})
            assert (await orders.place(4))["user"]["name"] == "user-4"
            assert (await orders.place_sync(5))["user"]["name"] == "user-5"
            r = await orders.attempt("other", "get_user", 1)
            assert r["error"] == "ConfigError", r

    run(main())


def test_a_sync_init_that_uses_a_given_process_fails_with_a_clear_error():
    async def main():
        async with ProcessManager() as pm:
            users = await pm.spawn(USERS)
            with pytest.raises(SpawnError) as e:
                await pm.spawn(f"{FILE}:SyncInit", processes={"db": users.process_id})
            assert "make that method async" in str(e.value), e.value

    run(main())


def test_the_sidecar_pattern_a_handle_passed_as_a_spawn_dependency_is_given_to_the_worker():
    async def main():
        async with ProcessManager() as pm:
            users = await pm.spawn(USERS)
            sidecar = await pm.spawn(f"{FILE}:Sidecar", dependencies={"main": users, "label": "logs"})
            assert await sidecar.watch(9) == {"label": "logs", "user": {"id": 9, "name": "user-9", "lang": "python"}}
            # A pool handle too.
            pool = await pm.pool(USERS, size=2)
            sidecar = await pm.spawn(f"{FILE}:Sidecar", dependencies={"main": pool, "label": "pool"})
            assert (await sidecar.watch(3))["user"]["id"] == 3

    run(main())
