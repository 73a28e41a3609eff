"""turbodill: serialize all of Python, fast.

A drop-in replacement for ``pickle``, ``dill`` and ``cloudpickle`` whose
pickler is written in Rust. For everything the standard library can pickle,
``turbodill.dumps(obj, p)`` writes exactly the bytes ``pickle.dumps(obj, p)``
writes, with no recursion limit. What has no importable name (lambdas,
closures, classes defined in ``__main__``, locks, files, ...) is pickled by
value. Loading uses the standard library's C unpickler.
"""

import functools as _functools
import io as _io
import pickle as _pickle
import subprocess as _subprocess
import sys as _sys
import types as _types
from collections.abc import Callable as _Callable
from pickle import (
    DEFAULT_PROTOCOL,
    PickleBuffer,
    PickleError,
    PicklingError,
    UnpicklingError,
)
from typing import Any as _Any, TypeVar as _TypeVar

from . import _versions  # noqa: F401  (first: a clear ImportError on an unsupported interpreter)

# isort: split
from . import _restricted, _signing, _typing as _t, detect, msgpack, pointers
from ._allowlist import ForbiddenGlobalError, UnsafePickleError
from ._extend import extend
from ._inspect import InspectReport, inspect as inspect
from ._native import (
    HIGHEST_PROTOCOL,
    InspectError,
    Pickler,
    PicklerMemoProxy,
    PicklingRecursionError,
    UnpicklableError,
    __version__ as __version__,
    _by_value_modules,
    dump,
    dumps,
    settings,
)
from ._reducers import CONTENTS_FMODE, HANDLE_FMODE, register_saver
from ._restricted import RestrictedUnpickler
from ._signing import SignatureError
from .session import (
    SessionError,
    SessionVersionError,
    SessionWarning,
    dump_module,
    dump_session,
    load_module,
    load_module_asdict,
    load_session,
    session_info,
)

# dill's sample objects of the stdlib's types, filled by ``load_types``, and
# their types by name (``turbodill.types`` is ``turbodill.objtypes``, as in dill).
objects: dict[str, object] = {}

from . import objtypes  # noqa: E402 (reads ``objects``)

types = objtypes


def load_types(pickleable=True, unpickleable=True):
    """Fill ``objects`` with sample objects of the standard library's types,
    by dill's names for them, those turbodill pickles (``pickleable``) and
    those it does not (``unpickleable``), and ``objtypes`` (``types``) with
    their types (dill's ``load_types``)."""
    import importlib
    import warnings

    from . import _objects

    for name, sample in _objects.samples().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # itertools' pickling, on 3.12+
                dumps(sample)
            wanted = pickleable
        except Exception:
            wanted = unpickleable
        if wanted:
            objects[name] = sample
        else:
            objects.pop(name, None)
    for name in [n for n in vars(objtypes) if "Type" in n]:
        delattr(objtypes, name)
    importlib.reload(objtypes)


class PickleWarning(Warning, PickleError):
    """dill's base class of pickling warnings."""


class PicklingWarning(PickleWarning, PicklingError):
    """A warning raised while pickling."""


class UnpicklingWarning(PickleWarning, UnpicklingError):
    """A warning raised while unpickling."""


# (``inspect`` is public but not star-exported: it would shadow the stdlib's.)
__all__ = [
    "CONTENTS_FMODE",
    "DEFAULT_PROTOCOL",
    "ForbiddenGlobalError",
    "HANDLE_FMODE",
    "HIGHEST_PROTOCOL",
    "InspectError",
    "InspectReport",
    "PickleBuffer",
    "PickleError",
    "PickleWarning",
    "Pickler",
    "PicklerMemoProxy",
    "PicklingError",
    "PicklingRecursionError",
    "PicklingWarning",
    "RestrictedUnpickler",
    "SessionError",
    "SessionVersionError",
    "SessionWarning",
    "SignatureError",
    "UnpicklableError",
    "Unpickler",
    "UnpicklingError",
    "UnpicklingWarning",
    "UnsafePickleError",
    "check",
    "copy",
    "detect",
    "dump",
    "dump_module",
    "dump_session",
    "dumps",
    "extend",
    "list_registry_pickle_by_value",
    "load",
    "load_types",
    "load_module",
    "load_module_asdict",
    "load_session",
    "loads",
    "msgpack",
    "objects",
    "objtypes",
    "pickle",
    "pickles",
    "pointers",
    "register",
    "register_pickle_by_value",
    "session_info",
    "settings",
    "unregister_pickle_by_value",
]


_T = _TypeVar("_T")


class Unpickler(_pickle.Unpickler):
    """The standard library's C unpickler. ``ignore`` is accepted for dill
    compatibility; turbodill has nothing to re-point (classes pickled by
    value keep one identity when they load). ``compat=True`` also loads
    payloads written by dill and cloudpickle, where neither is installed."""

    def __init__(self, file: _t.Readable, *, ignore: bool | None = None, compat: bool = False, **kwds: _Any) -> None:
        super().__init__(file, **kwds)
        if compat:
            from . import _compat

            # An instance attribute: the C unpickler calls it for each global;
            # without compat, none is set and no Python call is made.
            self.find_class = _functools.partial(_compat.find_class, super().find_class)  # type: ignore[method-assign]


def loads(
    data: _t.Buffer,
    ignore: bool | None = None,
    *,
    key: _t.Key | None = None,
    allow: _t.Allow | None = None,
    compat: bool = False,
    **kwds: _Any,
) -> _Any:
    """Load a pickle from bytes (``pickle.loads``; ``ignore`` as in dill).

    ``key`` (one key, or a list of accepted keys) loads only a payload
    signed by ``dumps(obj, key=...)``, checked before any opcode runs.
    ``allow`` (``"data"``, or entries ``"module.name"`` / ``"module.*"``)
    loads only allowlisted globals: see ``RestrictedUnpickler``.
    ``compat=True`` loads payloads written by dill and cloudpickle too,
    without them: their load-side helpers resolve to turbodill's."""
    if compat:
        if allow is not None:
            raise ValueError("compat=True cannot be combined with allow=")
        if key is not None:
            data = _signing.verify(data, key)
        return Unpickler(_io.BytesIO(data), compat=True, **kwds).load()
    if key is None and allow is None:
        try:  # (unpacking an empty **kwds costs a tiny load a sixth of its time)
            return _pickle.loads(data, **kwds) if kwds else _pickle.loads(data)
        except UnpicklingError:
            _signing.refuse_signed(data)
            raise
    if key is not None:
        data = _signing.verify(data, key)
    if allow is not None:
        return _restricted.loads(data, allow, **kwds)
    return _pickle.loads(data, **kwds)


# What the C unpickler says on the first byte of a signed envelope.
_SIGNED_FIRST_BYTE = ("invalid load key, '\\xff'.",)


def load(
    file: _t.Readable,
    ignore: bool | None = None,
    *,
    key: _t.Key | None = None,
    allow: _t.Allow | None = None,
    compat: bool = False,
    **kwds: _Any,
) -> _Any:
    """Load a pickle from an open binary file (``pickle.load``); ``key``,
    ``allow`` and ``compat`` as for ``loads``."""
    if key is not None:
        return loads(_signing.read_signed(file, key), allow=allow, compat=compat, **kwds)
    if compat:
        if allow is not None:
            raise ValueError("compat=True cannot be combined with allow=")
        return Unpickler(file, compat=True, **kwds).load()
    if allow is not None:
        return _restricted.load(file, allow, **kwds)
    try:
        return _pickle.load(file, **kwds)
    except UnpicklingError as e:
        if e.args == _SIGNED_FIRST_BYTE:
            raise SignatureError(_signing.SIGNED_WITHOUT_KEY) from None
        raise


def copy(obj: _T, *args: _Any, **kwds: _Any) -> _T:
    """A deep copy made by pickling: ``loads(dumps(obj, ...))``."""
    ignore = kwds.pop("ignore", None)
    return loads(dumps(obj, *args, **kwds), ignore=ignore)


def pickles(obj: object, exact: bool = False, safe: bool = False, **kwds: _Any) -> bool:
    """Whether ``obj`` survives a round trip: its copy compares equal (or,
    unless ``exact``, has the same type). ``safe`` treats any exception as
    "does not pickle"; otherwise only pickling errors do."""
    errors = Exception if safe else (TypeError, AssertionError, NotImplementedError, PicklingError, UnpicklingError)
    try:
        result = copy(obj, **kwds)
    except errors:
        return False
    try:
        if exact:
            return bool(result == obj)
        return type(result) is type(obj) or bool(result == obj)
    except Exception:
        return type(result) is type(obj)


def check(obj: object, *args: _Any, **kwds: _Any) -> None:
    """Load ``obj``'s pickle in a fresh interpreter (``python=`` to choose
    it) and print what it loads as; raises ``UnpicklingError`` if it fails."""
    python = kwds.pop("python", _sys.executable)
    verbose = kwds.pop("verbose", False)
    data = dumps(obj, *args, **kwds)
    code = "import pickle, sys; print(repr(pickle.loads(sys.stdin.buffer.read())))"
    proc = _subprocess.run([python, "-c", code], input=data, capture_output=True)
    print(proc.stdout.decode(errors="replace"), end="")
    if proc.returncode != 0:
        if verbose:
            print(proc.stderr.decode(errors="replace"), end="", file=_sys.stderr)
        raise UnpicklingError(f"{python} could not load the pickle: {proc.stderr.decode(errors='replace').strip()}")


def register(t: type) -> _Callable[[_t.Saver], _t.Saver]:
    """Decorator: ``@register(T)`` on ``save(pickler, obj)`` makes it pickle
    instances of ``T`` (dill's API). The saver reduces the object with
    ``pickler.save_reduce(...)`` or ``pickler.save_global(obj)``."""

    def decorator(func: _t.Saver) -> _t.Saver:
        register_saver(t, func)
        return func

    return decorator


def pickle(t: type, func: _t.Saver) -> None:
    """dill's ``pickle(T, save)``: ``register(T)(save)`` without decorating."""
    register_saver(t, func)


def register_pickle_by_value(module: _types.ModuleType) -> None:
    """Pickle functions and classes of ``module`` (and its submodules) by
    value, for workers that cannot import it (cloudpickle's API)."""
    if not isinstance(module, _types.ModuleType):
        raise ValueError(f"Input should be a module object, got {module!r} instead")
    if _sys.modules.get(module.__name__) is not module:
        raise ValueError(f"{module} was not imported correctly, have you used an `import` statement to access it?")
    _by_value_modules.add(module.__name__)


def unregister_pickle_by_value(module: _types.ModuleType) -> None:
    """Undo ``register_pickle_by_value``."""
    if not isinstance(module, _types.ModuleType):
        raise ValueError(f"Input should be a module object, got {module!r} instead")
    if module.__name__ not in _by_value_modules:
        raise ValueError(f"{module} is not registered for pickle by value")
    _by_value_modules.discard(module.__name__)


def list_registry_pickle_by_value() -> set[str]:
    """Names of the modules registered to be pickled by value."""
    return set(_by_value_modules)
