"""Both asyncio engines: the engine on the loop's own thread (the default; the
loop's selector is wrapped) and on a thread of its own (engine="thread").
The same calls, cancellation, events and pools work on both, and the loop's
other I/O and timers keep working beside the wrapped selector."""

import asyncio
import os
import signal

import pytest

from conftest import CALCULATOR, FAST_RESTARTS, run
from titan_pm import ProcessCrashedError, ProcessManager
from titan_pm._loop import LoopDriver

ENGINES = ["loop", "thread"]


@pytest.mark.parametrize("engine", ENGINES)
def test_calls_cancellation_and_events(engine, tmp_path):
    marker = tmp_path / "cancelled.txt"

    async def main():
        async with ProcessManager(engine=engine, restart_policy=FAST_RESTARTS) as pm:
            wrapped = isinstance(asyncio.get_running_loop()._selector, LoopDriver)
            assert wrapped == (engine == "loop")
            seen = []
            pm.on("*", lambda e: seen.append(e["type"]))
            calc = await pm.spawn(CALCULATOR)
            assert await calc.add(5, 3) == 8
            assert await asyncio.gather(*(calc.multiply(i, 3) for i in range(300))) == [3 * i for i in range(300)]

            task = asyncio.ensure_future(calc.slow(30, str(marker)))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(250):
                if marker.exists():
                    break
                await asyncio.sleep(0.02)
            assert marker.read_text() == "cancelled"

            call = asyncio.ensure_future(calc.sleep(30))
            await asyncio.sleep(0.2)
            os.kill(pm.get_process(calc.process_id)["pid"], signal.SIGKILL)
            with pytest.raises(ProcessCrashedError):
                await call
            assert await calc.add(1, 1) == 2
            await asyncio.sleep(0.1)
            assert seen == ["spawn", "ready", "crash", "restart", "spawn", "ready"]

            pool = await pm.pool(CALCULATOR, size=2)
            assert sorted(await asyncio.gather(*(pool.add(i, 0) for i in range(20)))) == list(range(20))

    run(main())


def test_the_loop_engine_supervises_while_the_loop_idles():
    async def main():
        async with ProcessManager(restart_policy=FAST_RESTARTS) as pm:
            restarted = asyncio.Event()
            pm.on("ready", lambda e: restarted.set())
            calc = await pm.spawn(CALCULATOR)
            await asyncio.sleep(0.05)
            restarted.clear()
            os.kill(pm.get_process(calc.process_id)["pid"], signal.SIGKILL)
            # No call is made: the engine runs while the loop waits, notices the crash and restarts.
            await asyncio.wait_for(restarted.wait(), 10)
            assert pm.get_process(calc.process_id)["restarts"] == 1

    run(main())


def test_other_io_and_timers_work_beside_the_engine():
    async def echo(reader, writer):
        while data := await reader.readline():
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)

            async def talk():
                for i in range(50):
                    writer.write(f"line {i}\n".encode())
                    await writer.drain()
                    assert await reader.readline() == f"line {i}\n".encode()

            async def compute():
                return [await calc.add(i, i) for i in range(50)]

            start = asyncio.get_running_loop().time()
            _, sums, _ = await asyncio.gather(talk(), compute(), asyncio.sleep(0.2))
            assert sums == [2 * i for i in range(50)]
            assert asyncio.get_running_loop().time() - start >= 0.19
            writer.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_a_manager_is_bound_to_its_loop():
    pm = ProcessManager()

    async def first():
        calc = await pm.spawn(CALCULATOR)
        assert await calc.add(1, 1) == 2
        await pm.shutdown()

    run(first())

    async def second():
        with pytest.raises(RuntimeError, match="event loop is closed"):
            await pm.spawn(CALCULATOR)

    run(second())


def test_a_signal_reaches_an_idle_loop_running_the_engine():
    """The engine's wait checks for signals as the selector's own wait would (Ctrl-C)."""

    class Interrupted(Exception):
        pass

    def on_alarm(signum, frame):
        raise Interrupted()

    async def main():
        async with ProcessManager() as pm:
            await pm.spawn(CALCULATOR)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            await asyncio.sleep(30)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        import time

        start = time.monotonic()
        with pytest.raises(Interrupted):
            asyncio.run(main())
        assert time.monotonic() - start < 10.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
