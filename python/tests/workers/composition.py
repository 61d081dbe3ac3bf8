"""Workers that are given other processes (inject_process) and shared state
(shared_state): a user service, an order service that calls it, a counter."""

import asyncio
import os

from titan_pm import get_trace_context, inject_process, process, public, shared_state, shared_value


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

    hits = shared_state(100)

    @public
    async def incr(self):
        return [await shared_value(self, "count").add(1), os.getpid()]

    @public
    def incr_sync(self):
        return [shared_value(self, "count").add(1), os.getpid()]

    @public
    async def bump(self, n):
        """`self.count += 1` n times; returns what this instance read after its last write. Its
        writes reach the host in order, so the explicit get returns once they all landed."""
        for _ in range(n):
            self.count += 1
            await asyncio.sleep(0)
        view = self.count
        await shared_value(self, "count").get()
        return [view, os.getpid()]

    @public
    def bump_sync(self, n):
        for _ in range(n):
            self.count += 1
        view = self.count
        shared_value(self, "count").get()
        return [view, os.getpid()]

    @public
    def view(self):
        """This instance's view (no host round trip)."""
        return self.count

    @public
    def read_own_write(self, n):
        """Writes, then reads at once: the read is the instance's own last write at least."""
        self.count += n
        mine = self.count
        return [mine, self.count >= mine]

    @public
    def hit(self):
        self.hits += 1
        return self.hits

    @public
    async def get(self):
        return await shared_value(self, "count").get()

    @public
    async def get_hits(self):
        return await shared_value(self, "hits").get()

    @public
    async def label_roundtrip(self, text):
        before = self.label
        self.label = text
        return [before, self.label, await shared_value(self, "label").get()]


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


@process(name="configured-sidecar", version="1.0.0")
class ConfiguredSidecar:
    """Handed the main service as a call argument (`await sidecar.configure(main)`): it calls it later."""

    def __init__(self):
        self.main, self.get_user = None, "get_user"

    @public
    async def configure(self, main, get_user="get_user"):
        """`get_user`: the main service's method name (`getUser` for a Node one)."""
        self.main, self.get_user = main, get_user
        return [type(main).__name__, (await main.call(get_user, 1))["name"]]

    @public
    async def watch(self, user_id):
        return await self.main.call(self.get_user, user_id)

    @public
    def watch_sync(self, user_id):
        return self.main.call(self.get_user, user_id)

    @public
    async def attempt(self, name, method, *args):
        """Calls the process given under `name`; returns the error class and message on failure."""
        from titan_pm.given import GivenProcess, given_of

        try:
            return {"ok": await GivenProcess(given_of(self), name).call(method, *args)}
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}

    @public
    async def pass_on(self, process_id):
        """Passes a process handle on in its own call: refused (only a host gives processes)."""
        try:
            await self.main.call("configure", {"$process": process_id})
            return "passed"
        except Exception as e:
            return f"{type(e).__name__}: {e}"
