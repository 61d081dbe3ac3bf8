"""The worker the typing check's user scripts spawn (annotated, as a user's would be)."""

import asyncio

from titan_pm import process, public


@process(name="calculator", version="1.0.0")
class Calculator:
    @public
    def add(self, a: int, b: int) -> int:
        return a + b

    @public
    async def slow_square(self, x: float, delay: float = 0.0) -> float:
        await asyncio.sleep(delay)
        return x * x

    @public
    def describe(self, name: str) -> dict[str, str]:
        return {"name": name}
