"""Workers that are given other processes (inject_process) and shared state
(shared_state): a user service, an order service that calls it, a counter."""

import asyncio
import os

from titan_pm import get_trace_context, inject_process, process, public, shared_state


@process(name="users", version="1.0.0")
class UserService:
    @public
    def get_user(self, user_id):
        return {"id": user_id, "name": f"user-{user_id}", "lang": "python"}

    @public
    def pid(self):
        return os.getpid()

    @public
    def fail(self, message):
        raise ValueError(message)

    @public
    def trace(self):
        return get_trace_context()

    @public
    async def sleep(self, ms):
        await asyncio.sleep(ms / 1000)
        return ms


@process(name="orders", version="1.0.0")
class OrderService:
    users = inject_process("users")
    other = inject_process("other")

    @public
    async def place(self, user_id):
        user = await self.users.get_user(user_id)
        return {"order": user_id * 10, "user": user}

    @public
    def place_sync(self, user_id):
        return {"order": user_id * 10, "user": self.users.get_user(user_id)}

    @public
    async def users_pid(self):
        return await self.users.pid()

    @public
    async def attempt(self, which, method, *args):
        """Calls `which` (an injected attribute); returns the error's class and message if it fails."""
        target = getattr(self, which)
        try:
            return {"ok": await target.call(method, *args)}
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e), "remote_type": getattr(e, "remote_type", None)}

    @public
    async def slow_users(self, timeout):
        try:
            return {"ok": await self.users.with_options(timeout=timeout).sleep(5000)}
        except Exception as e:
            return {"error": type(e).__name__}

    @public
    async def traced(self):
        """This call's trace context and the one the user service saw."""
        return {"here": get_trace_context(), "users": await self.users.trace()}


@process(name="counter", version="1.0.0")
class Counter:
    count = shared_state(0)
    label = shared_state("none")

    @public
    async def incr(self):
        return [await self.count.add(1), os.getpid()]

    @public
    def incr_sync(self):
        return [self.count.add(1), os.getpid()]

    @public
    async def get(self):
        return await self.count.get()

    @public
    async def label_roundtrip(self, text):
        before = await self.label.get()
        await self.label.set(text)
        return [before, await self.label.get()]


@process(name="api", version="1.0.0")
class Api:
    """A supervised child whose init calls the sibling started before it (injected as "db")."""

    db = inject_process("db")

    async def init(self):
        self.first = await self.db.get_user(1)

    @public
    def first_user(self):
        return self.first


@process(name="sync-init", version="1.0.0")
class SyncInit:
    """A sync init that uses a given process: it runs on the agent's thread, which cannot wait."""

    db = inject_process("db")

    def init(self):
        self.first = self.db.get_user(1)

    @public
    def first_user(self):
        return self.first


@process(name="sidecar", version="1.0.0")
class Sidecar:
    """Handed the main service as a spawn dependency (a process handle): it calls it."""

    def init(self, main, label):
        self.main, self.label = main, label

    @public
    async def watch(self, user_id):
        return {"label": self.label, "user": await self.main.get_user(user_id)}
