"""The asyncio host: spawn the worker as a child process, call it, look at its
health and metrics, and shut down (leaving `async with` does it)."""

import asyncio
import os

from titan_pm import ProcessManager, RemoteError

HERE = os.path.dirname(os.path.abspath(__file__))


async def main():
    async with ProcessManager(isolation="child", transport="ipc", timeout=10.0) as pm:
        calc = await pm.spawn(os.path.join(HERE, "calculator.py"), dependencies={"config": {"precision": 2}})
        print("add(5, 3) =", await calc.add(5, 3))
        print("squares =", await asyncio.gather(*(calc.slow_square(i) for i in range(5))))
        try:
            await calc.add(1, "x")
        except TypeError as e:  # the worker's TypeError, re-raised here
            assert isinstance(e, RemoteError) and e.remote_type == "TypeError"
            print("remote error:", e)
        print("processes:", pm.list_processes())
        print("health:", await pm.get_health(calc.process_id))
        m = await pm.get_metrics(calc.process_id)
        print(f"metrics: {m['requests']} requests, {m['errors']} errors, p50 {m['latency']['p50']:.3f} ms")
        pool = await pm.pool(os.path.join(HERE, "calculator.py"), size=2, strategy="round-robin")
        print("pool:", await pool.add(1, 2), "from", pool.size, "workers")


if __name__ == "__main__":
    asyncio.run(main())
