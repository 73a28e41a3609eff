"""Reducers for the long tail of objects the stdlib refuses: locks, thread
locals, weakrefs and weak collections (a weakref *proxy* the stdlib already
pickles, as its referent), open files, dict views, memoryviews,
``struct.Struct``, ``contextvars``, tracebacks of exceptions, subclasses of
classmethod/staticmethod/property (abc's abstract ones), and type
parameters (TypeVar, ParamSpec, TypeVarTuple) that their name does not give
back. ``state_setter_for`` decides which instances load without BUILD
consulting their class's ``__getattr__``.

Each reducer takes the object and dill's ``fmode``. The pickler consults
``reducer_for(type)`` only for objects that no dispatch table reduces, and
a reducer never changes what the stdlib can already pickle (a type parameter
found by its name is written by that name, the stdlib's bytes). Each reducer
returns a reduce tuple whose callables are stdlib functions or the stable
names in ``turbodill._reconstruct``.
"""

import _thread
import collections
import contextvars
import functools
import io
import re
import struct
import sys
import threading
import types
import typing
import weakref
from collections.abc import Callable
from typing import Any

from . import _reconstruct as r

# dill's `fmode` for files: HANDLE_FMODE reopens by name at the saved
# position; CONTENTS_FMODE clamps that position to the file's current size.
# (dill's FILE_FMODE writes saved contents back to disk on load; turbodill
# never writes to a file when loading, so it has no such mode.)
HANDLE_FMODE, CONTENTS_FMODE = 0, 1


def _reduce_lock(lock, _fmode):
    return r.make_lock, (lock.locked(),)


_RLOCK_COUNT = re.compile(r"count=(\d+)")


def _reduce_rlock(rlock, _fmode):
    # The count is only visible in the repr; a held RLock comes back held
    # (by the loading thread) with its count, an unheld one unheld.
    match = _RLOCK_COUNT.search(repr(rlock))
    return r.make_rlock, (int(match.group(1)) if match else 0,)


def _reduce_local(local, _fmode):
    # Per-thread data belongs to threads the loading side does not have.
    return type(local), ()


def _reduce_weakref(ref, _fmode):
    return r.make_weakref, (ref(),)


def _reduce_weakset(ws, _fmode):
    return weakref.WeakSet, (list(ws),)


def _reduce_weak_mapping(wd, _fmode):
    return type(wd), (dict(wd.items()),)


_STD_STREAMS = ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__")


def _reduce_file(f, fmode):
    for name in _STD_STREAMS:
        if f is getattr(sys, name, None):
            return getattr, (sys, name)
    raw = f
    while hasattr(raw, "buffer"):
        raw = raw.buffer
    while hasattr(raw, "raw"):
        raw = raw.raw
    name = getattr(raw, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"cannot pickle {type(f).__name__!r} object not backed by a named file")
    mode = getattr(f, "mode", None) or getattr(raw, "mode", "rb")
    # text: a TextIOWrapper; False: buffered binary; None: unbuffered FileIO
    text = True if isinstance(f, io.TextIOBase) else (None if isinstance(f, io.FileIO) else False)
    closed = f.closed
    if not closed:
        f.flush()
    position = 0 if closed else f.tell()
    encoding = getattr(f, "encoding", None) if text else None
    return r.open_file, (name, mode, position, closed, text, encoding, fmode)


def _reduce_dict_view(view, _fmode):
    mapping = r.real_mapping(view.mapping)
    kind = type(view).__name__.split("_")[-1]  # keys / values / items
    return getattr(type(mapping), kind), (mapping,)


def _reduce_mappingproxy(proxy, _fmode):
    return types.MappingProxyType, (r.real_mapping(proxy),)


def _reduce_memoryview(view, _fmode):
    data = view.tobytes() if view.readonly else bytearray(view.tobytes())
    return r.make_memoryview, (data, view.format, view.shape)


def _reduce_struct(s, _fmode):
    return struct.Struct, (s.format,)


def _reduce_context(ctx, _fmode):
    return r.make_context, (list(ctx.items()),)


def _reduce_contextvar(var, _fmode):
    # A new variable of the same name comes back (values travel with their
    # Context). Its default shows only through get() in a context where the
    # variable is unset: a fresh one.
    try:
        default = contextvars.Context().run(var.get)
    except LookupError:
        return contextvars.ContextVar, (var.name,)
    return functools.partial(contextvars.ContextVar, default=default), (var.name,)


def _reduce_traceback(tb, _fmode):
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    return r.make_traceback, (frames,)


def _registered_by_value(module_name):
    """Whether ``module_name`` is, or is inside, a module registered with
    ``register_pickle_by_value`` (the loading side may not import it)."""
    from . import _by_value_modules

    return any(module_name == m or module_name.startswith(m + ".") for m in _by_value_modules)


def _importable(obj):
    """Whether ``obj`` is reachable as ``module.qualname`` from a module the
    loading side can import (then it travels by reference, as the stdlib
    sends it)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or module in ("__main__", "__mp_main__") or "<" in qualname:
        return False
    if _registered_by_value(module):
        return False
    target = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target is obj


def _reduce_lru_cache(wrapper, _fmode):
    if _importable(wrapper):
        return wrapper.__qualname__
    params = wrapper.cache_parameters()
    return r.make_lru_cache, (wrapper.__wrapped__, params["maxsize"], params["typed"])


def _type_parameter_key(param):
    """A key from what defines ``param`` (deterministic across processes);
    a second, different parameter with the same definition alive in this
    process takes the next free key, so each loads back as itself."""
    import hashlib

    definition = repr((type(param).__qualname__, param.__module__, param.__name__, _type_parameter_parts(param)))
    digest = f"{param.__name__}-{hashlib.blake2b(definition.encode(), digest_size=8).hexdigest()}"
    key, n = digest, 1
    while r._type_parameters.setdefault(key, param) is not param:
        n += 1
        key = f"{digest}~{n}"
    r._type_parameter_keys[param] = key
    return key


def _type_parameter_parts(param):
    """``(constraints, options)`` to remake ``param`` with its class."""
    constraints = tuple(getattr(param, "__constraints__", ()))
    options = {}
    for option in ("bound", "covariant", "contravariant", "infer_variance"):
        if hasattr(param, f"__{option}__"):
            options[option] = getattr(param, f"__{option}__")
    if options.get("bound", None) in (None, type(None)):  # 3.12's ParamSpec says NoneType for none
        options.pop("bound", None)
    if getattr(param, "has_default", lambda: False)():
        options["default"] = param.__default__
    return constraints, options


def _reduce_type_parameter(param, _fmode):
    # By name (the stdlib's bytes) when the name gives back this very
    # object; by value otherwise: made in a function, or in __main__ or a
    # module pickled by value.
    from . import _by_value_modules

    module = getattr(param, "__module__", None)
    by_value = module in (None, "__main__", "__mp_main__") or any(
        module == m or module.startswith(m + ".") for m in _by_value_modules
    )
    if not by_value and getattr(sys.modules.get(module), param.__name__, None) is param:
        return param.__name__
    key = r._type_parameter_keys.get(param) or _type_parameter_key(param)
    constraints, options = _type_parameter_parts(param)
    return r.make_type_parameter, (type(param), param.__name__, constraints, options, key)


def _reduce_wrapping_descriptor(descriptor, _fmode):
    # Subclasses of classmethod, staticmethod and property (the abc module's
    # abstract ones) made again by their class from the same parts; what
    # their constructor does not set travels as state.
    if isinstance(descriptor, property):
        args = (descriptor.fget, descriptor.fset, descriptor.fdel, descriptor.__doc__)
    else:
        args = (descriptor.__func__,)
    state = {k: v for k, v in getattr(descriptor, "__dict__", {}).items() if k not in _SET_BY_WRAPPING}
    return type(descriptor), args, state or None


# What classmethod/staticmethod copy from the function, and property's doc.
_SET_BY_WRAPPING = frozenset({"__module__", "__name__", "__qualname__", "__doc__", "__annotations__", "__wrapped__"})


def _takes_wrapped_parts(cls, base):
    """Whether ``cls`` (a subclass of ``base``) is constructed from the
    same parts as ``base``: its ``__init__`` and ``__new__`` are inherited,
    or it is one of abc's abstract variants."""
    import abc

    if cls in (abc.abstractclassmethod, abc.abstractstaticmethod, abc.abstractproperty):
        return True
    return cls.__init__ is base.__init__ and cls.__new__ is base.__new__


def state_setter_for(cls, by_value):
    """``_reconstruct.set_instance_state`` when loading an instance of
    ``cls`` with BUILD would consult its ``__getattr__`` on the half-built
    instance and fail; else None (the stdlib's bytes). A class pickled by
    value takes it whenever it delegates attribute access; an importable
    one only when a blank instance shows that the lookup fails otherwise
    than with AttributeError (``pickle.loads`` of the stdlib's bytes would
    fail, typically with RecursionError)."""
    if "__setstate__" in dir(cls) or not hasattr(cls, "__getattr__"):
        return None
    if by_value:
        return r.set_instance_state
    if cls.__new__ is not object.__new__ or hasattr(cls, "__del__"):
        return None  # (a blank made here must not run user code when it dies)
    try:
        hasattr(object.__new__(cls), "__setstate__")
    except Exception:  # RecursionError, KeyError...: BUILD would fail too
        return r.set_instance_state
    return None


def _reduce_super(obj, _fmode):
    return super, (obj.__thisclass__, obj.__self__)


def _reduce_exception(exc, _fmode):
    # The stdlib's reduction, plus the traceback, cause and context it drops,
    # so a worker's error can be printed and re-raised by the caller.
    reduced = exc.__reduce__()
    if exc.__traceback__ is None and exc.__cause__ is None and exc.__context__ is None:
        return reduced
    cls, args = reduced[0], reduced[1]
    state = reduced[2] if len(reduced) > 2 else None
    extra = (exc.__traceback__, exc.__cause__, exc.__context__, exc.__suppress_context__)
    return r.make_exception, (cls, args, state, *extra)


_REDUCERS = {
    type(_thread.allocate_lock()): _reduce_lock,
    type(threading.RLock()): _reduce_rlock,
    _thread._local: _reduce_local,
    weakref.ReferenceType: _reduce_weakref,
    weakref.WeakSet: _reduce_weakset,
    weakref.WeakKeyDictionary: _reduce_weak_mapping,
    weakref.WeakValueDictionary: _reduce_weak_mapping,
    io.TextIOWrapper: _reduce_file,
    io.BufferedReader: _reduce_file,
    io.BufferedWriter: _reduce_file,
    io.BufferedRandom: _reduce_file,
    io.FileIO: _reduce_file,
    type({}.keys()): _reduce_dict_view,
    type({}.values()): _reduce_dict_view,
    type({}.items()): _reduce_dict_view,
    types.MappingProxyType: _reduce_mappingproxy,
    memoryview: _reduce_memoryview,
    struct.Struct: _reduce_struct,
    contextvars.Context: _reduce_context,
    contextvars.ContextVar: _reduce_contextvar,
    types.TracebackType: _reduce_traceback,
    type(functools.lru_cache()(lambda: None)): _reduce_lru_cache,
    super: _reduce_super,
    BaseException: _reduce_exception,
    typing.TypeVar: _reduce_type_parameter,
    typing.ParamSpec: _reduce_type_parameter,
}
if hasattr(typing, "TypeVarTuple"):
    _REDUCERS[typing.TypeVarTuple] = _reduce_type_parameter

_od: collections.OrderedDict[None, None] = collections.OrderedDict()
_REDUCERS.update(
    {type(_od.keys()): _reduce_dict_view, type(_od.values()): _reduce_dict_view, type(_od.items()): _reduce_dict_view}
)
del _od

# dill-style savers registered with `turbodill.register`, by exact type.
_SAVERS: dict[type, Callable[[Any, Any], Any]] = {}


class _RecordingPickler:
    """What a dill-style saver ``save(pickler, obj)`` is given: it records the
    reduction the saver asks for, and turbodill writes it."""

    def __init__(self, obj):
        self._obj = obj
        self.reduction = None

    def save_reduce(self, func, args, state=None, listitems=None, dictitems=None, state_setter=None, obj=None):
        self.reduction = (func, args, state, listitems, dictitems, state_setter)

    def save_global(self, obj, name=None):
        self.reduction = name if name is not None else obj.__qualname__

    def __getattr__(self, name):
        raise NotImplementedError(
            f"a saver registered with turbodill.register may call save_reduce or save_global, not {name}"
        )


def register_saver(cls, save):
    def reduce(obj, _fmode):
        recorder = _RecordingPickler(obj)
        save(recorder, obj)
        if recorder.reduction is None:
            raise TypeError(f"the saver registered for {cls.__qualname__} did not reduce the object")
        return recorder.reduction

    _SAVERS[cls] = reduce
    _forget_type_caches()


def unregister_saver(cls):
    """Undo ``register_saver``."""
    del _SAVERS[cls]
    _forget_type_caches()


def _forget_type_caches():
    from ._native import _forget_type_caches as forget

    forget()


# Reducers that also serve subclasses which do not define their own reduce.
_INHERITED = (_thread._local, weakref.WeakKeyDictionary, weakref.WeakValueDictionary, BaseException)


def reducer_for(cls):
    """The reducer for instances of ``cls``, or None."""
    reducer = _SAVERS.get(cls) or _REDUCERS.get(cls)
    if reducer is not None:
        return reducer
    for base in (classmethod, staticmethod, property):
        if issubclass(cls, base) and cls is not base:
            overrides_reduce = any(
                "__reduce__" in vars(k) or "__reduce_ex__" in vars(k) for k in cls.__mro__[: cls.__mro__.index(base)]
            )
            if not overrides_reduce and _takes_wrapped_parts(cls, base):
                return _reduce_wrapping_descriptor
    for base in _INHERITED:
        if issubclass(cls, base) and not any(
            "__reduce__" in vars(k) or "__reduce_ex__" in vars(k) or "__getstate__" in vars(k)
            for k in cls.__mro__[: cls.__mro__.index(base)]
        ):
            return _REDUCERS[base]
    return None


# ---- module-level sentinels ------------------------------------------------

_object_index: dict[int, tuple[str, str]] = {}
_indexed_module_count = -1


def _index_plain_objects():
    """``id(obj) -> (module, name)`` for every bare ``object()`` bound at
    module level in an imported module (rebuilt when modules are added)."""
    global _indexed_module_count
    if _indexed_module_count == len(sys.modules):
        return _object_index
    _object_index.clear()
    for module_name, module in list(sys.modules.items()):
        if module_name in ("__main__", "__mp_main__") or module is None:
            continue
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if type(value) is object:
                _object_index.setdefault(id(value), (module_name, name))
    _indexed_module_count = len(sys.modules)
    return _object_index


def sentinels_of(cls):
    """``{id(obj): (module, name)}`` for the stateless instances of ``cls``
    bound at module level in importable modules (``SENTINEL = object()``,
    ``dataclasses.MISSING``): they travel by reference, so that
    ``x is SENTINEL`` still holds after loading. The pickler asks once per
    class per dump."""
    if cls is object:
        return {k: v for k, v in _index_plain_objects().items() if not _registered_by_value(v[0])}
    module_name = getattr(cls, "__module__", None)
    if module_name in (None, "__main__", "__mp_main__") or _registered_by_value(module_name):
        return {}
    module = sys.modules.get(module_name)
    return {
        id(value): (module_name, name)
        for name, value in list(getattr(module, "__dict__", {}).items())
        if type(value) is cls
    }
