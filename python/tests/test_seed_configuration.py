"""The seed's configuration as Python users write it (snake_case, seconds):
read by core's one option schema, so unknown keys are ConfigErrors naming their
path, and each section does what it says."""

import asyncio
import typing

import pytest

from titan_pm import (
    ConfigError,
    PoolStrategy,
    ProcessCrashedError,
    ProcessFailedError,
    ProcessManager,
    SpawnError,
    _native,
    create_process_manager,
    process,
    public,
)
from titan_pm import _options
from titan_pm import sync as tsync

from conftest import CALCULATOR, WORKERS, run

SEED = str(WORKERS / "seed.py")

SEED_BLOCK = dict(
    resources={"timeout": 30.0, "max_memory": "512MB", "max_cpu": 50},
    restart_policy={"max_restarts": 3, "window": 60.0, "backoff": {"type": "linear", "initial": 0.1, "max": 30.0}},
    monitoring={"health_check": {"interval": 5.0, "timeout": 2.0}, "metrics": True, "tracing": True},
)


def test_the_seed_block_is_accepted_by_both_managers():
    with tsync.ProcessManager(**SEED_BLOCK) as pm:
        assert pm.list_processes() == []
    create_process_manager(**SEED_BLOCK)


@pytest.mark.parametrize(
    "options, path",
    [
        ({"resources": {"max_mem": 1}}, "resources.max_mem"),
        ({"monitorng": {}}, "monitorng"),
        ({"restart_policy": {"backoff": {"kind": "linear"}}}, "restart_policy.backoff.kind"),
        ({"monitoring": {"health_check": {"intervall": 1}}}, "monitoring.health_check.intervall"),
        ({"restart_policy": {"maxRestarts": 1}}, "restart_policy.maxRestarts"),
    ],
)
def test_unknown_manager_keys_name_their_path(options, path):
    with pytest.raises(ConfigError, match=rf"{path}: unknown option"):
        ProcessManager(**options)


def test_unknown_spawn_and_pool_keys_name_their_path():
    with tsync.ProcessManager() as pm:
        with pytest.raises(ConfigError, match=r"versoin: unknown option"):
            pm.spawn(CALCULATOR, versoin="1.0.0")
        with pytest.raises(ConfigError, match=r"auto_scale.target_cpus: unknown option"):
            pm.pool(CALCULATOR, size=1, auto_scale={"target_cpus": 50})
        with pytest.raises(ConfigError, match=r"resources.timeout: \"soon\" is not a duration"):
            pm.spawn(CALCULATOR, resources={"timeout": "soon"})


def _flatten(td: type, prefix: str = "") -> typing.Set[str]:
    """Every key path of a TypedDict, following nested TypedDicts."""
    out = set()
    for key, hint in typing.get_type_hints(td).items():
        out.add(prefix + key)
        for arg in typing.get_args(hint) or (hint,):
            if isinstance(arg, type) and hasattr(arg, "__annotations__") and issubclass(arg, dict):
                out |= _flatten(arg, f"{prefix}{key}.")
    return out


@pytest.mark.parametrize(
    "kind, typed",
    [
        ("manager", _options.ManagerOptions),
        ("spawn", _options.SpawnOptions),
        ("pool", _options.PoolOptions),
        ("listen", _options.ListenOptions),
    ],
)
def test_the_typed_options_agree_with_cores_schema(kind, typed):
    core = set(_native.option_schema(kind))
    stubs = _flatten(typed)
    assert sorted(core - stubs) == [], f"options core accepts that {typed.__name__} lacks"
    assert sorted(stubs - core) == [], f"options {typed.__name__} has that core refuses"


def test_a_linear_backoff_grows_by_its_initial_step():
    async def main():
        policy = {"max_restarts": 3, "backoff": {"type": "linear", "initial": 0.03, "max": 1.0}}
        async with ProcessManager(restart_policy=policy) as pm:
            delays = []
            pm.on("restart", lambda e: delays.append(round(e["delay"], 3)))
            h = await pm.spawn(SEED)
            for n in range(3):
                with pytest.raises(Exception):
                    await h.crash()
                while len(delays) <= n:
                    await asyncio.sleep(0.01)
                assert await h.add(1, 1) == 2  # waits for the new instance
            assert delays == [0.03, 0.06, 0.09]

    run(main())


def test_resources_timeout_is_every_calls_deadline():
    async def main():
        async with ProcessManager(resources={"timeout": 0.2}) as pm:
            calc = await pm.spawn(CALCULATOR)
            with pytest.raises(TimeoutError):
                await calc.sleep(5)

    run(main())


def test_a_worker_above_max_memory_is_restarted_with_a_memory_event():
    async def main():
        async with ProcessManager(resources={"max_memory": "96MB"}, restart_policy={"backoff": 0.01}) as pm:
            events = []
            pm.on("memory", events.append)
            h = await pm.spawn(SEED)
            first = await h.pid()
            try:
                await h.allocate(160)
            except ProcessCrashedError:
                pass  # the watcher may restart it before the call returns
            while not events:
                await asyncio.sleep(0.02)
            assert events[0]["limit"] == 96 << 20 and events[0]["rss"] > events[0]["limit"]
            while pm.get_process(h.process_id)["state"] != "running" or pm.get_process(h.process_id)["restarts"] < 1:
                await asyncio.sleep(0.02)
            assert await h.pid() != first

    run(main())


def test_the_class_health_interval_restarts_a_worker_that_turns_unhealthy():
    async def main():
        async with ProcessManager(restart_policy={"backoff": 0.01}) as pm:
            events = []
            pm.on("unhealthy", events.append)
            h = await pm.spawn(SEED)
            first = await h.pid()
            await asyncio.sleep(0.3)  # healthy probes do nothing
            assert events == [] and await h.pid() == first
            await h.turn_unhealthy()
            while not events:
                await asyncio.sleep(0.02)
            assert events[0]["probes"] == 3
            while pm.get_process(h.process_id)["restarts"] < 1 or pm.get_process(h.process_id)["state"] != "running":
                await asyncio.sleep(0.02)
            assert await h.pid() != first

    run(main())


def test_target_memory_is_a_percent_so_an_idle_pool_stays_at_min():
    async def main():
        async with ProcessManager() as pm:
            pool = await pm.pool(
                CALCULATOR, size=1, auto_scale={"min": 1, "max": 3, "target_memory": 80, "interval": 0.02, "cooldown": 0.02}
            )
            await asyncio.sleep(0.5)
            assert pool.size == 1

    run(main())


def test_spawn_checks_the_version_the_worker_declares():
    with tsync.ProcessManager() as pm:
        with pytest.raises(SpawnError, match="version mismatch"):
            pm.spawn(SEED, version="1.0.0")
        assert pm.list_processes() == []
        assert pm.spawn(SEED, version="2.0.0").add(1, 2) == 3


def test_spawn_and_kill_cycles_leave_the_list_short():
    @process(name="tiny")
    class Tiny:
        @public
        def ping(self):
            return 1

    with tsync.ProcessManager(isolation="none") as pm:
        handles = []
        for _ in range(300):
            h = pm.spawn(Tiny)
            pm.kill(h.process_id)
            handles.append(h)
        assert pm.list_processes() == []
        with pytest.raises(ProcessFailedError) as e:
            handles[-1].ping()
        assert e.value.state == "stopped"


def test_the_seeds_names_work_in_python():
    async def main():
        async with create_process_manager() as pm:
            calc = await pm.spawn(CALCULATOR)
            assert getattr(calc, "__processId") == calc.process_id
            pool = await pm.pool(CALCULATOR, size=2, strategy=PoolStrategy.ROUND_ROBIN)
            assert await pool["add"](2, 3) == 5
            assert await calc["add"](1, 1) == 2
            assert str(PoolStrategy.LEAST_LOADED) == "least-loaded"

    run(main())
