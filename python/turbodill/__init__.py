"""turbodill: serialize all of Python, fast.

A drop-in replacement for ``pickle`` whose pickler is written in Rust. For
everything the standard library can pickle, ``turbodill.dumps(obj, p)`` writes
exactly the bytes ``pickle.dumps(obj, p)`` writes, with no recursion limit.
Loading uses the standard library's C unpickler.
"""

from pickle import (
    DEFAULT_PROTOCOL,
    PickleBuffer,
    PickleError,
    PicklingError,
    Unpickler,
    UnpicklingError,
    load,
    loads,
)

from ._native import HIGHEST_PROTOCOL, Pickler, PicklerMemoProxy, UnpicklableError, dump, dumps

__all__ = [
    "DEFAULT_PROTOCOL",
    "HIGHEST_PROTOCOL",
    "PickleBuffer",
    "PickleError",
    "Pickler",
    "PicklerMemoProxy",
    "PicklingError",
    "Unpickler",
    "UnpicklableError",
    "UnpicklingError",
    "dump",
    "dumps",
    "load",
    "loads",
]
