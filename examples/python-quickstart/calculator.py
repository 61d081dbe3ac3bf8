"""A titan-pm worker: a class marked @process, its callable methods @public."""

import asyncio

from titan_pm import health_check, on_shutdown, process, public


@process(name="calculator", version="1.0.0")
class Calculator:
    def init(self, config=None):  # optional; gets the spawn's dependencies by keyword
        self.config = config or {}
        self.calls = 0

    @public
    def add(self, a, b):
        self.calls += 1
        return a + b

    @public
    async def slow_square(self, x):
        await asyncio.sleep(0.1)  # async methods run on the worker's asyncio loop
        return x * x

    @health_check
    def check(self):
        return {"status": "healthy", "checks": [{"name": "calls", "status": "healthy", "message": str(self.calls)}]}

    @on_shutdown
    async def cleanup(self):
        print(f"calculator shutting down after {self.calls} calls")
