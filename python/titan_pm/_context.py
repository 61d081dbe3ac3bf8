"""The call a worker method is serving: its W3C trace context, as the core put it
in the call's `CallContext` (the runtime sets it around each call, in a
`contextvars.ContextVar`, so it follows the method into its awaits and is
separate for calls running at the same time).

    >>> get_trace_context() is None  # outside a call
    True
    >>> token = _CURRENT.set(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", ""))
    >>> get_trace_context()["traceparent"]
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    >>> _CURRENT.reset(token)
"""

from __future__ import annotations

import contextvars
from typing import Dict, Optional, Tuple

# (trace id, span id, parent span id) of the call being served.
_CURRENT: "contextvars.ContextVar[Optional[Tuple[str, str, str]]]" = contextvars.ContextVar(
    "titan_pm_trace", default=None
)


def get_trace_context() -> Optional[Dict[str, str]]:
    """Inside a worker method: the current call's trace context
    ``{"trace_id", "span_id", "parent_span_id", "traceparent"}`` (``parent_span_id``
    is the caller's span, empty for a root span). ``None`` outside a call."""
    t = _CURRENT.get()
    if t is None or not t[0]:
        return None
    trace_id, span_id, parent = t
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "traceparent": f"00-{trace_id}-{span_id}-01",
    }
