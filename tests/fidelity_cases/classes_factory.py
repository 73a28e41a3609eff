"""A factory that makes classes and type parameters with one definition
each time it is called (test_fidelity_classes: twins keep their identity)."""

import enum
import typing


def make():
    T = typing.TypeVar("T")

    class Color(str, enum.Enum):  # noqa: UP042 (the mixin form users write)
        RED = "r"
        GREEN = "g"

    class Point(typing.NamedTuple):
        x: int
        y: int = 2

    class Box(typing.Generic[T]):
        pass

    return T, Color, Point, Box
