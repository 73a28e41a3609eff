"""Classes used by bench/bench.py.

They live in their own importable module (not ``__main__``) so that every
library, including C ``pickle``, pickles them by reference (module + qualname)
rather than by value.
"""

from dataclasses import dataclass


class Plain:
    """An ordinary class whose instances keep their attributes in ``__dict__``."""

    def __init__(self, a, b, c):
        self.a = a
        self.b = b
        self.c = c

    def __eq__(self, other):
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None


class Slotted:
    """A class with ``__slots__`` (pickling it needs protocol >= 2)."""

    __slots__ = ("a", "b", "c")

    def __init__(self, a, b, c):
        self.a = a
        self.b = b
        self.c = c

    def __eq__(self, other):
        return type(other) is type(self) and all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None


@dataclass
class DC:
    a: int
    b: str
    c: float
