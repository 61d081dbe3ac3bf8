"""A user's host script with mistakes: mypy must report an error on each line
marked `# error: ...`, and on no other line (tests/typing/run.sh)."""

import titan_pm.sync
from titan_pm import ProcessManager

from calculator import Calculator


async def main() -> None:
    async with ProcessManager() as pm:
        calc = await pm.spawn("calculator.py", Calculator)
        await calc.call(Calculator.ad, 5, 3)  # error: a typo in the method name
        await calc.call(Calculator.add, 5, "3")  # error: a wrong argument type
        await calc.call(Calculator.add, 5)  # error: a missing argument
        await calc.call(Calculator.slow_square, 2.0, dela=1.0)  # error: a misspelt keyword
        text: str = await calc.call(Calculator.add, 5, 3)  # error: the result is an int
        pool = await pm.pool("calculator.py", Calculator)
        await pool.call(Calculator.add, 1, 2, 3)  # error: too many arguments


def blocking() -> None:
    with titan_pm.sync.ProcessManager() as pm:
        calc = pm.spawn("calculator.py", Calculator)
        calc.call(Calculator.describe, 42)  # error: a wrong argument type
        n: str = calc.call(Calculator.add, 1, 2)  # error: the result is an int
