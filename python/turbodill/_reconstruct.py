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

import types
import weakref

FORMAT_VERSION = 1

# Classes made by payloads, by the deterministic key the pickler derived from
# their definition. A second payload with the same class gets the same object.
_classes = weakref.WeakValueDictionary()
# The key of every class pickled by value or made here, fixed the first
# time it is needed: later changes to a class do not change its identity.
_class_keys = weakref.WeakKeyDictionary()
# Classes made and not yet given their attributes. A class found in
# `_classes` is live: its state is never overwritten by a later payload.
_awaiting_state = weakref.WeakSet()


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
    _awaiting_state.add(cls)


def class_setstate(cls, state):
    """Give a class made by this payload its attributes. A class that was
    already live in this process keeps its own (it may have been changed
    since, and other objects use it)."""
    if cls not in _awaiting_state:
        return cls
    _awaiting_state.discard(cls)
    registry = state.pop("_abc_registry", ())
    for k, v in state.items():
        setattr(cls, k, v)
    for subclass in registry:
        cls.register(subclass)
    return cls


_typevars = weakref.WeakValueDictionary()


def make_typevar(name, bound, constraints, covariant, contravariant, key):
    """The TypeVar known by ``key``, or a new one (TypeVars defined in
    ``__main__`` have no importable name)."""
    import typing

    tv = _typevars.get(key)
    if tv is None:
        tv = typing.TypeVar(name, *constraints, bound=bound, covariant=covariant, contravariant=contravariant)
        _typevars[key] = tv
    return tv
