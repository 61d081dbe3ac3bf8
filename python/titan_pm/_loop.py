"""How results reach an asyncio loop: `LoopDriver` (the default) runs the core
engine on the loop's own thread by wrapping the loop's selector; `ThreadDelivery`
serves the engine-thread manager through a descriptor the loop watches.

Both keep `waiting` (token -> future) and `streams` (token -> callback for
event streams), and hand over `(token, ok, value)` triples.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from . import _native


class _Delivery:
    def __init__(self) -> None:
        self.waiting: Dict[int, "asyncio.Future[Any]"] = {}
        self.streams: Dict[int, Callable[[Any], None]] = {}

    def dispatch(self, results: Iterable[Tuple[int, bool, Any]]) -> None:
        waiting, streams = self.waiting, self.streams
        for token, ok, value in results:
            fut = waiting.pop(token, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(value) if ok else fut.set_exception(value)
                continue
            stream = streams.get(token)
            if stream is not None:
                if value is None:  # the stream ended (its pool or manager is gone)
                    del streams[token]
                else:
                    stream(value)


class LoopDriver(_Delivery, selectors.BaseSelector):
    """The loop's selector, wrapped: waiting for I/O runs the core engine."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        _Delivery.__init__(self)
        self.inner = inner
        self.native = _native.LoopRuntime()
        self._fd = inner.fileno()  # type: ignore[attr-defined]

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self.inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.inner.modify(fileobj, events, data)

    def select(self, timeout: Optional[float] = None) -> Any:
        self.native.wait(self._fd, timeout)
        ready = self.inner.select(0)
        self.dispatch(self.native.take_done())
        return ready

    def close(self) -> None:
        self.native.release()
        self.inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self.inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self.inner.get_map()

    def fileno(self) -> int:
        return self._fd


def loop_driver(loop: asyncio.AbstractEventLoop) -> Optional[LoopDriver]:
    """The loop's driver, installing it on a selector loop; None for any other loop."""
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, LoopDriver):
        return selector
    if not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop) or not hasattr(selector, "fileno"):
        return None
    driver = LoopDriver(selector)  # type: ignore[arg-type]
    loop._selector = driver  # type: ignore[attr-defined]
    return driver


class ThreadDelivery(_Delivery):
    """Results of the engine-thread manager, read when its descriptor wakes the loop."""

    def __init__(self, native: Any) -> None:
        super().__init__()
        self.native = native

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.native.wake_fd(), self.drain)

    def drain(self) -> None:
        self.dispatch(self.native.drain())
