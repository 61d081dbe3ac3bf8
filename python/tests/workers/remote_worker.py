"""A worker the remote-worker tests start by hand (as an orchestrator would) and
that dials in to a listening host."""

import asyncio
import os

from titan_pm import process, public


@process(name="remote-py")
class RemoteWorker:
    @public
    def add(self, a, b):
        return a + b

    @public
    def pid(self):
        return os.getpid()

    @public
    async def sleep(self, seconds):
        await asyncio.sleep(seconds)
        return "slept"
