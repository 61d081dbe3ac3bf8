"""A worker whose policies need its own code (titan_pm._layers): pydantic and
callable validators, a cache key function and a cache condition; and methods
that return their call's trace context. `runs(name)` counts executions per method."""

import asyncio
from typing import List

from pydantic import BaseModel, Field, TypeAdapter

from titan_pm import cache, get_trace_context, process, public, validate


class User(BaseModel):
    email: str = Field(pattern="@")
    age: int = Field(ge=0)


def positive(n):
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"{n!r} is not a positive whole number")


@process(name="worker-side", version="1.0.0")
class WorkerSide:
    def init(self):
        self.counts = {}

    def _ran(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]

    @public
    def runs(self, name):
        return self.counts.get(name, 0)

    @public
    @validate(User)
    def create(self, user: User):
        self._ran("create")
        return user.email

    @validate(TypeAdapter(List[int]))
    @public
    async def total(self, numbers):
        self._ran("total")
        return sum(numbers)

    @public
    @validate(positive)
    def square(self, n):
        self._ran("square")
        return n * n

    @public
    @validate(lambda v: isinstance(v, str) and v.isupper())
    def shout(self, text):
        self._ran("shout")
        return text + "!"

    @public
    @cache(ttl=0.4, key=lambda user_id, verbose=False: f"user:{user_id}")
    def profile(self, user_id, verbose=False):
        n = self._ran("profile")
        return {"id": user_id, "run": n, "verbose": verbose}

    @public
    @cache(ttl="30s", condition=lambda r: r["status"] == "done")
    async def job(self, status):
        n = self._ran("job")
        return {"status": status, "run": n}

    @public
    @cache(ttl=30, key=lambda x: x)
    def cached_fails(self, x):
        self._ran("cached_fails")
        raise ValueError("never cached")

    @public
    def trace(self):
        return get_trace_context()

    @public
    async def trace_async(self):
        await asyncio.sleep(0.01)
        return get_trace_context()
