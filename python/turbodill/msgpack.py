"""Data-only MessagePack: ``packb``/``unpackb``, ``dump``/``load``.

Plain data (None, bool, int, float, str, bytes, list, dict) is plain
MessagePack, readable and writable by any MessagePack library. Tuples, sets,
frozensets, bytearrays, ints beyond 64 bits, complex numbers,
datetime/date/time/timedelta (with ``datetime.timezone`` or
``zoneinfo.ZoneInfo`` tzinfo), Decimal and UUID are MessagePack ext types, and
so are instances of the dataclasses, attrs classes, NamedTuples and Enums
passed to :func:`register`. Shared objects and cycles come back shared: a
container met again is written as a back-reference. ``docs/msgpack-format.md``
describes the wire format.

Loading is data-only: it never imports a module and never calls anything but
the constructors of the types above and the classes registered here, looked
up by their registered name. A registered instance is made as pickle makes
one, by ``cls.__new__(cls)`` and then ``object.__setattr__`` for each field,
without calling ``__init__``. Malformed or hostile input raises
:class:`DecodeError`.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import IO, Any, TypeVar

from ._native import (
    _MSGPACK_KIND_ENUM as _ENUM,
    _MSGPACK_KIND_NAMEDTUPLE as _NAMEDTUPLE,
    _MSGPACK_KIND_OBJECT as _OBJECT,
    MsgpackCodec,
)

__all__ = [
    "DecodeError",
    "EncodeError",
    "MsgpackError",
    "dump",
    "load",
    "packb",
    "register",
    "unpackb",
    "unregister",
]


class MsgpackError(ValueError):
    """Base class of the errors of turbodill.msgpack."""


class EncodeError(MsgpackError, TypeError):
    """An object that cannot be encoded; the message names its type and its
    path in the graph (``obj['a'][3].field``)."""


class DecodeError(MsgpackError):
    """Input that is not a document this module wrote or could have written:
    truncated, trailing bytes, a malformed or unknown ext, an unregistered
    name, a back-reference out of range, nesting too deep, ..."""


# {class: (name, kind, field names)} and {name: (class, kind, field names)}:
# the codec reads both on every call, so changes apply at once.
_by_type: dict[type, tuple[str, int, tuple[str, ...]]] = {}
_by_name: dict[str, tuple[type, int, tuple[str, ...]]] = {}

_codec = MsgpackCodec(EncodeError, DecodeError, _by_type, _by_name)

packb = _codec.packb
unpackb = _codec.unpackb


def dump(obj: Any, file: IO[bytes]) -> None:
    """Write ``packb(obj)`` to a binary file."""
    file.write(packb(obj))


def load(file: IO[bytes]) -> Any:
    """Read the rest of a binary file as one document and decode it."""
    return unpackb(file.read())


def _describe(cls: type) -> tuple[int, tuple[str, ...]]:
    """The kind of a registrable class and the names of its fields."""
    if isinstance(cls, enum.EnumMeta):
        return _ENUM, ()
    if issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple):
        return _NAMEDTUPLE, tuple(cls._fields)  # type: ignore[attr-defined]  # checked just above
    if dataclasses.is_dataclass(cls):
        # Every field, init=False ones included (ClassVars are not fields).
        return _OBJECT, tuple(f.name for f in dataclasses.fields(cls))
    attrs_fields = getattr(cls, "__attrs_attrs__", None)
    if attrs_fields is not None:
        return _OBJECT, tuple(a.name for a in attrs_fields)
    raise TypeError(
        f"cannot register {cls!r}: turbodill.msgpack registers dataclasses, attrs classes, NamedTuples and Enums"
    )


_C = TypeVar("_C", bound=type)


def register(cls: _C, name: str | None = None) -> _C:
    """Let instances of ``cls`` (a dataclass, attrs class, NamedTuple or Enum)
    be encoded, and be decoded from payloads that name it.

    The wire carries ``name``, by default ``f"{cls.__module__}.{cls.__qualname__}"``;
    only registered names decode. Fields are read when registering: register
    again after changing them. Usable as a class decorator.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register() takes a class, not {type(cls).__name__}")
    kind, fields = _describe(cls)
    if name is None:
        name = f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str):
        raise TypeError("the registered name must be a str")
    other = _by_name.get(name)
    if other is not None and other[0] is not cls:
        raise ValueError(f"the name {name!r} is already registered for {other[0]!r}")
    unregister(cls)
    _by_type[cls] = (name, kind, fields)
    _by_name[name] = (cls, kind, fields)
    return cls


def unregister(cls: type) -> None:
    """Forget ``cls`` (nothing happens if it was not registered)."""
    entry = _by_type.pop(cls, None)
    if entry is not None:
        _by_name.pop(entry[0], None)
