"""Importable classes used by tests/test_differential.py.

They live in their own module so pickle can find them by qualified name
(``_diff_types.Plain`` etc.) both when dumping and when loading again.
Every class here exercises a different path of the pickle reduce protocol.
"""

import dataclasses
import enum
from typing import NamedTuple


class Plain:
    """Ordinary instance with a __dict__."""

    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b


class Empty:
    """Instance with an empty __dict__ (state is falsy)."""


class Slotted:
    """__slots__ only (no __dict__): unpicklable below protocol 2."""

    __slots__ = ("x", "y")

    def __init__(self, x=None, y=None):
        self.x = x
        if y is not None:  # leave y unset sometimes: missing slots are skipped
            self.y = y


class SlottedWithDict:
    """__slots__ plus __dict__: state is the (dict, slots) pair."""

    __slots__ = ("x", "__dict__")

    def __init__(self, x=None, extra=None):
        self.x = x
        self.extra = extra


@dataclasses.dataclass
class DC:
    a: object = None
    b: object = None


@dataclasses.dataclass(frozen=True)
class FrozenDC:
    a: object = None
    b: object = None


class ReduceArgs:
    """__reduce__ returning (callable, args)."""

    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b

    def __reduce__(self):
        return (ReduceArgs, (self.a, self.b))


class Reduce5:
    """__reduce__ returning the full 5-tuple with listitems and dictitems iterators."""

    def __init__(self, items=(), mapping=None, state=None):
        self.items = list(items)
        self.mapping = dict(mapping or {})
        self.state = state

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __setitem__(self, key, value):
        self.mapping[key] = value

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):
        return (
            Reduce5,
            (),
            self.state,
            iter(self.items),
            iter(self.mapping.items()),
        )


class Reduce5AppendOnly:
    """listitems into an object with append() but no extend()."""

    def __init__(self, items=()):
        self.items = list(items)

    def append(self, item):
        self.items.append(item)

    def __reduce__(self):
        return (Reduce5AppendOnly, (), None, iter(self.items), None)


class GetSetState:
    """__getstate__/__setstate__; state may be falsy (skipped below protocol 2)."""

    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b

    def __getstate__(self):
        if self.a is None and self.b is None:
            return ()
        return (self.a, self.b)

    def __setstate__(self, state):
        if state:
            self.a, self.b = state
        else:
            self.a = self.b = None


class GetNewArgs:
    """__new__ requires arguments supplied by __getnewargs__."""

    def __new__(cls, x, y):
        self = object.__new__(cls)
        self.x = x
        self.y = y
        return self

    def __getnewargs__(self):
        return (self.x, self.y)


class GetNewArgsEx:
    """__getnewargs_ex__ with keyword arguments (NEWOBJ_EX / partial path)."""

    def __new__(cls, x, *, y=None):
        self = object.__new__(cls)
        self.x = x
        self.y = y
        return self

    def __getnewargs_ex__(self):
        return ((self.x,), {"y": self.y})


class ListSub(list):
    """List subclass with an attribute."""


class DictSub(dict):
    """Dict subclass with an attribute."""


class Point(NamedTuple):
    x: object
    y: object = None


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2
    BIG = 2**70


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


class _Singleton:
    def __reduce__(self):
        return "SINGLETON"


# __reduce__ returning a string: pickled as a global reference.
SINGLETON = _Singleton()


class Outer:
    """Nested qualified names (Outer.Inner) are looked up attribute by attribute."""

    class Inner:
        def __init__(self, v=None):
            self.v = v


def module_function(x):
    return x


# Unpicklable values, for the "same exception type" property.
module_lambda = lambda: None  # noqa: E731  (qualname '<lambda>' is not findable)


def make_local_instance():
    class Local:
        pass

    return Local()


def make_generator():
    yield 1
