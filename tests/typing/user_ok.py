"""A user's host script, typed end to end: `mypy --strict` must pass on it
(tests/typing/run.sh). Each assignment states the type mypy must infer."""

import asyncio
from typing import Any, Dict, List

import titan_pm.sync
from titan_pm import Pool, ProcessHandle, ProcessManager

from calculator import Calculator


async def main() -> None:
    async with ProcessManager() as pm:
        calc: ProcessHandle[Calculator] = await pm.spawn("calculator.py", Calculator)
        total: int = await calc.call(Calculator.add, 5, 3)
        square: float = await calc.call(Calculator.slow_square, 3.0, delay=0.1)  # async method: its awaited result
        info: Dict[str, str] = await calc.with_options(timeout=2.0, retries=1).call(Calculator.describe, "x")
        squares: List[float] = await asyncio.gather(*(calc.call(Calculator.slow_square, i) for i in range(3)))
        untyped: Any = await calc.add(5, 3)  # attribute calls stay dynamic (Any)
        by_name: Any = await calc.call("add", 5, 3)
        pool: Pool[Calculator] = await pm.pool("calculator.py", Calculator, size=2)
        pooled: int = await pool.call(Calculator.add, 1, 2)
        in_thread = await pm.spawn(Calculator, isolation="worker")  # a class target types itself
        threaded: int = await in_thread.call(Calculator.add, 1, 2)
        plain = await pm.spawn("calculator.py")  # no interface: ProcessHandle[Any], any class's methods
        anything: int = await plain.call(Calculator.add, 1, 2)
        print(total, square, info, squares, untyped, by_name, pooled, threaded, anything)


def blocking() -> None:
    with titan_pm.sync.ProcessManager() as pm:
        calc: titan_pm.sync.ProcessHandle[Calculator] = pm.spawn("calculator.py", Calculator)
        total: int = calc.call(Calculator.add, 5, 3)
        square: float = calc.call(Calculator.slow_square, 3.0)
        pool = pm.pool("calculator.py", Calculator, size=2)
        pooled: int = pool.call(Calculator.add, 1, 2)
        print(total, square, pooled)


if __name__ == "__main__":
    asyncio.run(main())
    blocking()
