"""Reconstructors that turbodill payloads call by name when they load.

This module is a format contract: payloads refer to these functions as
``turbodill._reconstruct.<name>``, so a name here never changes meaning or
signature once released. A new format adds new names (``FORMAT_VERSION``
counts them); old ones stay so old payloads keep loading.

Functions, closures, code objects and cells do not need this module: they
are rebuilt from stdlib callables and load with plain ``pickle.loads``.
Classes do, for their identity: a class pickled by value in several payloads
must load as one class in the loading process, so ``isinstance`` holds
across payloads.
"""

import os
import types
import typing
import weakref

FORMAT_VERSION = 2

# Classes made by payloads, by the deterministic key the pickler derived from
# their definition. A second payload with the same class gets the same object.
_classes: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()
# The key of every class pickled by value or made here, fixed the first
# time it is needed: later changes to a class do not change its identity.
_class_keys: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
# Classes made here by a payload: a later payload's state replaces theirs
# (the sender changed the class since, as cloudpickle's tracker does). A
# class defined in this process is never touched.
_made_here: weakref.WeakSet[type] = weakref.WeakSet()


def make_class(metaclass, name, bases, key, namespace):
    """The class known by ``key``, or a new skeleton class.

    ``namespace`` holds what must exist when the class is created
    (``__slots__``, ``__module__``, ``__qualname__``); the rest comes later
    through ``class_setstate``, once the class can be referred to.
    """
    cls = _classes.get(key)
    if cls is None:
        items = dict(namespace)

        def fill(ns):
            for k, v in items.items():
                ns[k] = v

        cls = types.new_class(name, bases, {"metaclass": metaclass}, fill)
        _track(cls, key)
    return cls


def make_enum(metaclass, name, bases, key, members, namespace):
    """Like ``make_class`` for an Enum: ``members`` maps names to values in
    definition order, and the metaclass makes the members from them."""
    cls = _classes.get(key)
    if cls is None:
        classdict = metaclass.__prepare__(name, bases)
        for k, v in namespace.items():
            classdict[k] = v
        for member_name, value in members.items():
            classdict[member_name] = value
        cls = metaclass.__new__(metaclass, name, bases, classdict)
        _track(cls, key)
    return cls


def _track(cls, key):
    _classes[key] = cls
    _class_keys[cls] = key
    _made_here.add(cls)


def class_setstate(cls, state):
    """Give a class made by a payload its attributes: the first time, and
    again from every later payload that carries it (its sender may have
    changed it since). A class defined in this process keeps its own."""
    if cls not in _made_here:
        return cls
    registry = state.pop("_abc_registry", ())
    member_attributes = state.pop("_enum_member_attributes", {})
    for k, v in state.items():
        setattr(cls, k, v)
    for name, attributes in member_attributes.items():
        cls.__members__[name].__dict__.update(attributes)
    for subclass in registry:
        cls.register(subclass)
    _restore_field_kinds(state.get("__dataclass_fields__"))
    return cls


def _restore_field_kinds(fields):
    """A dataclass field's kind is one of three sentinels of ``dataclasses``
    that ``fields()`` compares by identity; pickled with the class they
    load as copies, so each is put back by its name."""
    if not isinstance(fields, dict):
        return
    import dataclasses

    for field in fields.values():
        kind = getattr(field, "_field_type", None)
        if type(kind).__name__ == "_FIELD_BASE":
            field._field_type = getattr(dataclasses, kind.name, kind)


_typevars: weakref.WeakValueDictionary[str, typing.TypeVar] = weakref.WeakValueDictionary()


def make_typevar(name, bound, constraints, covariant, contravariant, key):
    """The TypeVar known by ``key``, or a new one (TypeVars defined in
    ``__main__`` have no importable name)."""
    tv = _typevars.get(key)
    if tv is None:
        tv = typing.TypeVar(name, *constraints, bound=bound, covariant=covariant, contravariant=contravariant)
        _typevars[key] = tv
    return tv


# Type parameters (TypeVar, ParamSpec, TypeVarTuple) pickled by value, by
# key, as for classes: one object per key in the loading process.
_type_parameters: weakref.WeakValueDictionary[str, typing.Any] = weakref.WeakValueDictionary()
_type_parameter_keys: weakref.WeakKeyDictionary[typing.Any, str] = weakref.WeakKeyDictionary()


def make_type_parameter(kind, name, constraints, options, key):
    """The type parameter known by ``key``, or a new ``kind(name,
    *constraints, **options)`` (a TypeVar made inside a function, or in a
    module pickled by value, has no importable name)."""
    param = _type_parameters.get(key)
    if param is None:
        param = kind(name, *constraints, **options)
        _type_parameters[key] = param
        _type_parameter_keys[param] = key
    return param


def set_instance_state(obj, state):
    """What BUILD does with ``state`` for a class without ``__setstate__``,
    without looking ``__setstate__`` up on the half-built ``obj``: a class
    whose ``__getattr__`` reads an attribute not yet set would recurse."""
    slot_state = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slot_state = state
    if state:
        object.__getattribute__(obj, "__dict__").update(state)
    if slot_state:
        for name, value in slot_state.items():
            setattr(obj, name, value)
    return obj


# ---- the long tail (see turbodill._reducers) ---------------------------------


def make_lock(locked):
    import threading

    lock = threading.Lock()
    if locked:
        lock.acquire()
    return lock


def make_rlock(count):
    import threading

    rlock = threading.RLock()
    for _ in range(count):
        rlock.acquire()
    return rlock


class _Gone:
    """A stand-in referent for a weakref that was already dead."""


def make_weakref(referent):
    if referent is None:
        return weakref.ref(_Gone())  # dead at once, as it was
    return weakref.ref(referent)


class _RealMapping:
    """``proxy | _RealMapping()`` hands the mapping behind a mappingproxy (or
    a dict view's ``.mapping``) to ``__ror__``: mappingproxy's ``|`` defers
    to the real mapping's, which does not know this type."""

    def __ror__(self, mapping):
        return mapping


def real_mapping(proxy):
    return proxy | _RealMapping()


def make_memoryview(data, fmt, shape):
    view = memoryview(data)
    if fmt != "B" or len(shape) != 1:
        view = view.cast(fmt, shape)
    return view


def make_context(items):
    import contextvars

    ctx = contextvars.Context()
    for var, value in items:
        ctx.run(var.set, value)
    return ctx


_OPEN_FLAGS = {
    "r": os.O_RDONLY,
    "r+": os.O_RDWR,
    "w": os.O_WRONLY | os.O_CREAT,
    "w+": os.O_RDWR | os.O_CREAT,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
}


def open_file(name, mode, position, closed, text, encoding, fmode):
    """Reopen a file as it was: same name, mode, position, closed state,
    and the same kind of object as ``open()`` gave (``text`` True: text,
    False: buffered binary, None: unbuffered ``FileIO``). Loading never
    truncates or overwrites a file: a 'w' or 'x' file reopens for writing
    where it stands (created empty only if it is missing), an 'a' file
    appends."""
    import io

    letter = next(c for c in mode if c in "rwax")
    kind = letter + ("+" if "+" in mode else "")
    if letter == "r" and not os.path.exists(name):
        raise FileNotFoundError(f"cannot reopen {name!r}: it no longer exists")
    # Opened by descriptor, with flags that never truncate (nor fail on the
    # file an 'x' mode made); FileIO's mode only reflects them.
    flags = _OPEN_FLAGS[kind.replace("x", "w")] | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    raw = io.FileIO(os.open(name, flags, 0o666), kind)
    raw.name = name
    if text is None:
        f = raw
    elif raw.readable() and raw.writable():
        f = io.BufferedRandom(raw)
    else:
        f = io.BufferedReader(raw) if raw.readable() else io.BufferedWriter(raw)
    if text:
        f = io.TextIOWrapper(f, encoding=encoding)
        f.mode = mode  # as open() sets it
    if not closed:
        size = os.fstat(raw.fileno()).st_size
        if "a" not in mode:
            f.seek(min(position, size) if fmode == 1 else position)
    else:
        f.close()
    return f


def make_traceback(frames):
    """A real traceback with the saved file names, function names and line
    numbers, made by raising through code compiled to match them (as tblib
    does), so it prints and re-raises."""
    tb = None
    for filename, name, lineno in reversed(frames):
        code = compile("\n" * (lineno - 1) + "raise __marker__", filename, "exec")
        code = code.replace(co_name=name)
        try:
            exec(code, {"__marker__": _TracebackMarker()})
        except _TracebackMarker as marker:
            frame_tb = marker.__traceback__.tb_next
        tb = types.TracebackType(tb, frame_tb.tb_frame, frame_tb.tb_lasti, lineno)
    return tb


class _TracebackMarker(Exception):
    pass


def make_lru_cache(func, maxsize, typed):
    """An ``lru_cache`` wrapper around ``func`` (its cache starts empty)."""
    import functools

    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


def make_exception(cls, args, state, traceback, cause, context, suppress_context):
    """An exception as the stdlib rebuilds it, with its traceback, cause and
    context restored."""
    exc = cls(*args)
    if state:
        exc.__dict__.update(state)
    exc.__traceback__ = traceback
    exc.__cause__ = cause
    exc.__context__ = context
    exc.__suppress_context__ = suppress_context
    return exc


# ---- suspended generators, coroutines and async generators (format 2) -------


def make_generator(func, code_digest, python_version):
    """A fresh, not started generator (or coroutine, or async generator) of
    ``func``, to receive a saved frame through ``restore_generator``.

    ``code_digest`` is the digest of the code the saved frame ran: a
    function found by reference whose code differs is refused, never
    resumed at an instruction of another code.
    """
    import pickle
    import sys

    from . import _generators

    here = tuple(sys.version_info[:2])
    if tuple(python_version) != here:
        raise pickle.UnpicklingError(
            f"a generator saved by Python {'.'.join(map(str, python_version))} loads only on "
            f"that version (this is {here[0]}.{here[1]}): frames differ between versions"
        )
    if not isinstance(func, types.FunctionType):
        raise pickle.UnpicklingError(f"generator function expected, got {type(func).__name__}")
    if _generators.code_digest(func.__code__) != code_digest:
        raise pickle.UnpicklingError(
            f"{func.__module__}.{func.__qualname__} is not the function the generator was "
            "saved from: its code has changed since"
        )
    if not func.__code__.co_flags & _generators.GENERATOR_FLAGS:
        raise pickle.UnpicklingError(f"{func.__qualname__} is not a generator or coroutine function")
    gen = _generators.dummy_call(func)
    if not isinstance(gen, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)):
        raise pickle.UnpicklingError(f"{func.__qualname__} did not make a generator")
    return gen


def restore_generator(gen, state):
    """Give a generator made by ``make_generator`` its saved frame:
    ``state`` is ``(1, frame_state, lasti, slots, present, exc_value, name,
    qualname)``. Checked against the code before the frame is written."""
    from . import _generators
    from ._native import _gen_restore

    try:
        _generators.check_state(gen, state)
        _, frame_state, lasti, slots, present, exc_value, name, qualname = state
        _gen_restore(gen, frame_state, lasti, slots, present, exc_value)
    except BaseException:
        _generators.close_unstarted(gen)
        raise
    if gen.__name__ != name:
        gen.__name__ = name
    if gen.__qualname__ != qualname:
        gen.__qualname__ = qualname


def make_finished_generator(code, name, qualname):
    """A generator of ``code`` that has finished (its frame is gone)."""
    import pickle

    from . import _generators

    if not code.co_flags & _generators.GENERATOR_FLAGS:
        raise pickle.UnpicklingError(f"{qualname} is not the code of a generator or coroutine")
    closure = tuple(types.CellType() for _ in code.co_freevars)
    gen = _generators.dummy_call(types.FunctionType(code, {}, name, None, closure))
    _generators.close_unstarted(gen)
    gen.__name__ = name
    gen.__qualname__ = qualname
    return gen
