"""``turbodill.detect.trace``: a readable trace of what the pickler does.

While tracing is on, the native pickler reports every object it reduces
(everything but atoms, strings and plain containers): one line each, with
the object's path in the graph, its type, how it is written and the
reduction chosen::

    obj[1].handler  function  function by value
    obj[2]  Lock  turbodill reducer -> turbodill._reconstruct.make_lock(...)
"""

import contextlib
import os
import sys

from ._native import _set_trace_sink

_MAX_REPR = 60


def _describe(reduction):
    if reduction is None:
        return ""
    if isinstance(reduction, str):
        return f" -> global {reduction}"
    try:
        func = reduction[0]
        name = f"{getattr(func, '__module__', None) or '?'}.{getattr(func, '__qualname__', repr(func))}"
    except Exception:  # a malformed reduction: the pickler reports it
        return f" -> {type(reduction).__name__}"
    return f" -> {name}(...)"


def _short_repr(obj):
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 1] + "…"


class _Sink:
    """Writes one line per reported object to ``stream`` (``None``: the
    current ``sys.stderr``, looked up at each line)."""

    def __init__(self, stream=None):
        self.stream = stream

    def __call__(self, path, obj, how, reduction):
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(f"{path}  {type(obj).__qualname__} {_short_repr(obj)}  {how}{_describe(reduction)}\n")

    def log(self, msg, *args):
        """Write a line of one's own into the trace (``log("> D = %r", D)``)."""
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write((msg % args if args else msg) + "\n")


_current = None


def _install(sink):
    global _current
    _current = sink
    _set_trace_sink(sink)


def trace(arg=None, *, mode="a"):
    """Trace pickling (dill's ``detect.trace``). ``trace(True)`` and
    ``trace(False)`` turn it on (to ``sys.stderr``) and off. Anything else
    gives a context manager tracing inside its block, to a file object, a
    path opened with ``mode``, or (``None``) ``sys.stderr``, and yielding a
    function that writes a line of one's own into the trace::

        with turbodill.detect.trace("trace.txt", mode="w") as log:
            log("> D = %r", D)
            turbodill.dumps(D)
    """
    if repr(arg) not in ("False", "True"):
        return _trace_block(arg, mode)
    _install(_Sink() if arg else None)
    return None


@contextlib.contextmanager
def _trace_block(target, mode):
    previous = _current
    with contextlib.ExitStack() as stack:
        if isinstance(target, (str, bytes, os.PathLike)):
            target = stack.enter_context(open(target, mode))
        sink = _Sink(target)
        _install(sink)
        try:
            yield sink.log
        finally:
            _install(previous)
