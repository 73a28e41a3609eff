"""``multiprocessing`` with turbodill as its pickler.

The same API as the standard library's ``multiprocessing`` (``Pool``,
``Process``, ``Queue``, ``Manager``, ``get_context(method)``...), for the
fork, spawn and forkserver start methods, whose processes send lambdas,
closures and ``__main__`` classes by value. Children started by spawn and
forkserver import this package before they read the process object, so they
pickle with turbodill too. The stdlib's ``multiprocessing`` is left as it is.

``ProcessPoolExecutor`` is ``concurrent.futures.ProcessPoolExecutor`` on a
context of this package.
"""

import concurrent.futures
import copyreg
import io
import pickle
import sys

from .. import Pickler as _Pickler
from . import _stdlib


class ForkingPickler(_Pickler):
    """``multiprocessing.reduction.ForkingPickler`` on turbodill's pickler:
    the reducers registered with this package's ``reduction.register`` or
    with the stdlib's (connections, sockets, shared ctypes...) apply."""

    _extra_reducers = {}
    _copyreg_dispatch_table = copyreg.dispatch_table

    def __init__(self, file, protocol=None, **kwds):
        super().__init__(file, protocol, **kwds)
        table = self._copyreg_dispatch_table.copy()
        table.update(_stdlib.stdlib_extra_reducers)
        table.update(self._extra_reducers)
        self.dispatch_table = table

    @classmethod
    def register(cls, type, reduce):
        """Register a reduce function for a type."""
        cls._extra_reducers[type] = reduce

    @classmethod
    def dumps(cls, obj, protocol=None):
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()

    loads = pickle.loads


def _use_turbodill_pickler(reduction):
    # The reducers the copied module registered while it ran stay registered.
    ForkingPickler._extra_reducers = reduction.ForkingPickler._extra_reducers
    reduction.ForkingPickler = ForkingPickler


sys.meta_path.append(
    _stdlib.Finder(
        __name__,
        {
            "reduction": _use_turbodill_pickler,
            "context": _stdlib.share_context_state,
        },
    )
)

from . import context  # noqa: E402  (needs the finder)

# The default context's methods, as the stdlib's package exports them.
__all__ = [x for x in dir(context._default_context) if not x.startswith("_")]
globals().update((name, getattr(context._default_context, name)) for name in __all__)
__all__ += ["ForkingPickler", "ProcessPoolExecutor"]

SUBDEBUG = 5
SUBWARNING = 25


def _call_pickled(payload):
    fn, args, kwargs = pickle.loads(payload)
    return fn(*args, **kwargs)


class ProcessPoolExecutor(concurrent.futures.ProcessPoolExecutor):
    """``concurrent.futures.ProcessPoolExecutor`` whose calls and results
    travel by turbodill. ``mp_context`` is a context of this package (a
    start method's name, or a stdlib context, is turned into one); by default
    the default context. A call that cannot be pickled raises from
    ``submit`` itself."""

    def __init__(self, max_workers=None, mp_context=None, *args, **kwds):
        if mp_context is None or isinstance(mp_context, str):
            mp_context = context._default_context.get_context(mp_context)
        elif not isinstance(mp_context, context.BaseContext):
            mp_context = context._default_context.get_context(mp_context.get_start_method())
        super().__init__(max_workers, mp_context, *args, **kwds)

    def submit(self, fn, /, *args, **kwargs):
        # The call queue is the stdlib's (its feeder pickles with the stdlib's
        # pickler): the call crosses it as turbodill bytes. Results come back
        # through this package's SimpleQueue.
        payload = bytes(ForkingPickler.dumps((fn, args, kwargs)))
        return super().submit(_call_pickled, payload)
