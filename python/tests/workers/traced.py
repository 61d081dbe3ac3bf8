"""A worker that returns its call's trace context (no other dependency than titan_pm)."""

import asyncio

from titan_pm import get_trace_context, process, public


@process(name="traced", version="1.0.0")
class Traced:
    @public
    def trace(self):
        return get_trace_context()

    @public
    async def trace_async(self):
        await asyncio.sleep(0.005)
        return get_trace_context()
