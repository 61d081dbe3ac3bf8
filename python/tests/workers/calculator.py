"""The calculator of the tests: sync and async methods, state, dependencies,
health, a shutdown hook that writes a file, and methods that misbehave."""

import asyncio
import os
import time

from titan_pm import health_check, on_shutdown, process, public


class Helper:
    pass


@process(name="calculator", version="1.0.0")
class Calculator:
    def init(self, config=None, shutdown_file=None, fail=None):
        if fail:
            raise RuntimeError(f"init failed on purpose: {fail}")
        self.config = config
        self.shutdown_file = shutdown_file
        self.count = 0

    @public
    def add(self, a, b):
        return a + b

    @public()
    def multiply(self, a, b):
        return a * b

    @public
    def process_data(self, items):
        return [s.upper() for s in items]

    @public
    async def fibonacci(self, n):
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
            await asyncio.sleep(0)
        return a

    @public
    def increment(self):
        self.count += 1
        return self.count

    @public
    def get_config(self):
        return self.config

    @public
    def pid(self):
        return os.getpid()

    @public
    def echo(self, value):
        return value

    @public
    def fail(self, kind, message):
        raise {"ValueError": ValueError, "KeyError": KeyError, "TypeError": TypeError}[kind](message)

    @public
    def bad_return(self):
        return {"ok": [1, 2, {3, 4}]}

    @public
    def nested(self, depth):
        value = "bottom"
        for _ in range(depth):
            value = [value]
        return value

    @public
    def cyclic(self):
        loop = {}
        loop["self"] = loop
        return {"ok": 1, "loop": loop}

    @public
    def blob(self, size):
        return b"\x07" * size

    @public
    def lone_surrogate(self):
        return {"s": "ab\udc00"}

    @public
    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    @public
    async def slow(self, seconds, marker):
        try:
            await asyncio.sleep(seconds)
            return "finished"
        finally:
            with open(marker, "w") as f:
                f.write("cancelled" if seconds > 0 else "done")

    @public(timeout=0.3)
    async def bounded(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    @public
    def hold(self, value, marker):
        """Writes `value`'s length to `marker`, then sleeps until killed (a call in flight)."""
        with open(marker, "w") as f:
            f.write(str(len(value)))
        time.sleep(60)
        return len(value)

    @public
    def exit(self, code):
        os._exit(code)

    @public
    def crash_first(self, path, crashes):
        """Counts its calls in `path` (a count that outlives the process); the first `crashes` exit with 3."""
        with open(path, "a") as f:
            f.write("call\n")
        with open(path) as f:
            calls = len(f.read().splitlines())
        if calls <= crashes:
            os._exit(3)
        return calls

    @public
    def fail_counted(self, path):
        """Counts its calls in `path`, and raises (the worker's own error)."""
        with open(path, "a") as f:
            f.write("call\n")
        raise ValueError("failed on purpose")

    def not_public(self):
        return "secret"

    @health_check
    def check(self):
        # No overall status: core derives it from the checks (a `warn` -> degraded).
        return {"checks": [{"name": "disk", "status": "warn", "message": "almost full"}]}

    @on_shutdown
    async def cleanup(self):
        if self.shutdown_file:
            with open(self.shutdown_file, "w") as f:
                f.write("shutdown hook ran")
