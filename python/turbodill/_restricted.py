"""Restricted loading: ``loads(data, allow=...)`` and ``RestrictedUnpickler``.

Two checks, in this order:

1. Before any opcode runs, the static walk (``turbodill.inspect``) reads the
   whole pickle and its allowlist judges it (``_allowlist``): a forbidden
   global anywhere in the payload, or one named by strings known only at
   load time, refuses the payload; so do payloads past the limits below.
2. Then the C unpickler loads it, with ``find_class`` checking each global
   again before importing it. Extension codes, which ``_pickle.c`` serves
   from ``copyreg``'s cache without calling ``find_class``, are covered by
   the first check (each code is judged as the global it is registered for).

A few allowed names are served guarded (see ``_allowlist``): ``getattr``
only on globals this load found and for names the list allows,
``copyreg._reconstructor`` only with an allowed base, ``bytes`` /
``bytearray`` / ``codecs.encode`` only as pickle uses them.
"""

import copyreg
import io
import pickle as _pickle
from collections.abc import Iterable
from typing import Any

from . import _native, _signing
from ._allowlist import GETATTR, Allowlist, ForbiddenGlobalError, UnsafePickleError
from ._inspect import Findings, fixed_import
from ._typing import Allow, Readable

_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"})

# deque and defaultdict free their items recursively, without CPython's
# "trashcan": a chain of 100,000 nested ones overflows the C stack when
# freed. A chain is at most as long as the number of them a payload makes.
_RECURSIVELY_FREED = frozenset({"collections.deque", "collections.defaultdict"})


def _refuse_encoding(what, encoding):
    if not (isinstance(encoding, str) and encoding.lower() in _LATIN1):
        raise ForbiddenGlobalError(
            f"restricted loading runs {what} with the latin-1 encoding only, not {encoding!r}", what
        )


def _encode(text, encoding="utf-8"):
    """``codecs.encode`` as protocols 0 to 2 write bytes: a str to latin-1."""
    if type(text) is not str:
        raise ForbiddenGlobalError("restricted loading runs codecs.encode on a str only", "codecs.encode")
    _refuse_encoding("codecs.encode", encoding)
    return text.encode("latin-1")


def _without_size_form(cls):
    """``bytes`` or ``bytearray``, except ``cls(n)`` (n zero bytes from one
    payload integer) and encodings other than latin-1."""

    def make(*args):
        if args and hasattr(type(args[0]), "__index__"):
            raise ForbiddenGlobalError(f"restricted loading does not run {cls.__name__}(n)", f"builtins.{cls.__name__}")
        if len(args) > 1:
            _refuse_encoding(f"builtins.{cls.__name__}", args[1])
        return cls(*args[:2])

    make.__name__ = make.__qualname__ = cls.__name__
    return make


_GUARDED = {
    "builtins.bytes": _without_size_form(bytes),
    "builtins.bytearray": _without_size_form(bytearray),
    "_codecs.encode": _encode,
    "codecs.encode": _encode,
}


class RestrictedUnpickler(_pickle.Unpickler):
    """The stdlib's C unpickler, importing and calling only what ``allow``
    allows: ``"module.name"`` entries, ``"module.*"`` patterns and presets
    (``"data"``). See ``turbodill._allowlist`` for the rules.

    Each ``load()`` reads one whole pickle from the file, checks it
    statically, then loads it; the memo starts empty for each pickle (a
    pickle referring to an earlier one's memo is refused). Bytes
    read past the pickle are given back to a seekable file, and otherwise
    kept for the next ``load()``. Refusals raise ``ForbiddenGlobalError`` or
    ``UnsafePickleError`` (both ``UnpicklingError``) before any opcode runs.
    """

    #: Tuples nested deeper than this are refused: hashing one (as a dict key
    #: or set item) recurses on the C stack, one frame per level.
    max_tuple_depth = 2_000
    #: At most this many deque and defaultdict objects per payload (see
    #: ``_RECURSIVELY_FREED``).
    max_recursively_freed = 5_000

    def __init__(
        self,
        file: Readable,
        *,
        allow: Allow | Allowlist,
        fix_imports: bool = True,
        encoding: str = "ASCII",
        errors: str = "strict",
        buffers: Iterable[Any] | None = None,
    ) -> None:
        self._file = file
        self._allowlist = Allowlist.of(allow)
        self._fix_imports = fix_imports
        self._options: dict[str, Any] = {
            "encoding": encoding,
            "errors": errors,
            "buffers": None if buffers is None else iter(buffers),
        }
        self._pending = b""
        self._proto = 0
        self._found: dict[int, tuple[Any, str]] = {}  # id -> (object, dotted name): what find_class returned
        super().__init__(io.BytesIO(), fix_imports=False, **self._options)

    def find_class(self, module, name):
        # The C unpickler runs with fix_imports off: names are mapped here,
        # before the check, exactly once.
        module, name = fixed_import(module, name, self._proto, self._fix_imports)
        dotted = f"{module}.{name}"
        if not self._allowlist.may_import(dotted):
            raise ForbiddenGlobalError(f"global '{dotted}' is forbidden: it is not in the allowlist", dotted)
        if dotted == GETATTR and not self._allowlist.explicit_getattr:
            found = self._getattr
        elif dotted == "copyreg._reconstructor":
            found = self._reconstructor
        elif dotted in _GUARDED:
            found = _GUARDED[dotted]
        else:
            found = super().find_class(module, name)
        self._found[id(found)] = (found, dotted)
        return found

    def _name_of(self, obj):
        found = self._found.get(id(obj))
        return found[1] if found is not None and found[0] is obj else None

    def _getattr(self, obj, name, *default):
        base = self._name_of(obj)
        dotted = f"{base}.{name}" if base is not None and isinstance(name, str) else None
        if dotted is None or not self._allowlist.may_import(dotted):
            raise ForbiddenGlobalError(
                f"getattr of {dotted or 'an object that is not an allowed global'} is forbidden", dotted
            )
        value = getattr(obj, name, *default)
        self._found[id(value)] = (value, dotted)
        return value

    def _reconstructor(self, cls, base, state):
        name = self._name_of(base)
        if base is not object and (name is None or not isinstance(base, type) or not self._allowlist.may_call(name)):
            raise ForbiddenGlobalError(
                f"copyreg._reconstructor with the base {name or '<dynamic>'}: neither object nor an allowed class", name
            )
        return copyreg._reconstructor(cls, base, state)

    def load(self):
        data, native = self._next_pickle()
        return self._load_checked(data, native)

    def _next_pickle(self):
        """The next pickle's bytes (read until the walk finds its STOP) and
        the walk's findings."""
        data = self._pending
        while True:
            truncated = None
            if data:
                try:
                    native = _walk(data)
                    break
                except _native.InspectError as e:
                    if not e.truncated:
                        raise
                    truncated = e
            # read1: what is available (a socket stream must not wait for
            # bytes its peer will only send after this pickle is answered).
            more = getattr(self._file, "read1", self._file.read)(max(len(data), 1 << 16))
            if not more:
                if truncated is not None:
                    raise truncated
                raise EOFError("Ran out of input")
            data = bytes(data) + more
        size = native["size"]
        self._pending = data[size:]
        if self._pending and _seekable(self._file):
            self._file.seek(-len(self._pending), io.SEEK_CUR)
            self._pending = b""
        return data[:size], native

    def _load_checked(self, data, native=None):
        if native is None:
            native = _walk(data)
        findings = Findings(native, self._fix_imports)
        refusal = self._allowlist.refusal(findings, persistent_load=hasattr(self, "persistent_load"))
        if refusal is None:
            refusal = self._over_limits(findings)
        if refusal is not None:
            raise refusal
        self._proto = findings.proto
        try:
            return _OnePickle(self, data).load()
        finally:
            self._found = {}

    def _over_limits(self, findings):
        native = findings.native
        if native["memo_size"] > native["opcodes"]:
            return UnsafePickleError(
                f"memo index {native['memo_size'] - 1} in a pickle of {native['opcodes']} opcodes: "
                "no pickler numbers its memo so, and the C unpickler would allocate a table that large"
            )
        if native["tuple_depth"] > self.max_tuple_depth:
            return UnsafePickleError(
                f"tuples nested {native['tuple_depth']} deep (the limit is {self.max_tuple_depth}): "
                "hashing them would recurse that deep on the C stack"
            )
        made = sum(count for kind, name, _, count in findings.calls if kind == "call" and name in _RECURSIVELY_FREED)
        if made > self.max_recursively_freed:
            return UnsafePickleError(
                f"{made} deque/defaultdict objects (the limit is {self.max_recursively_freed}): "
                "CPython frees nested ones recursively on the C stack"
            )
        return None


class _OnePickle(_pickle.Unpickler):
    """A fresh C unpickler for one checked pickle, consulting the
    RestrictedUnpickler for globals and persistent ids. Fresh, because the C
    unpickler numbers MEMOIZE from a count that neither ``memo.clear()`` nor
    a second ``__init__`` resets, and the walk numbered them from 0."""

    def __init__(self, owner, data):
        if hasattr(owner, "persistent_load"):
            self.persistent_load = owner.persistent_load
        self.find_class = owner.find_class
        super().__init__(io.BytesIO(data), fix_imports=False, **owner._options)


def _walk(data):
    try:
        return _native.inspect_opcodes(data)
    except _native.InspectError as e:
        if not e.truncated:
            _signing.refuse_signed(data)
        raise


def _seekable(file):
    try:
        return file.seekable()
    except (AttributeError, OSError, ValueError):
        return False


def loads(data, allow, **kwds):
    """``turbodill.loads(data, allow=...)``: the first pickle in ``data``."""
    return RestrictedUnpickler(io.BytesIO(), allow=allow, **kwds)._load_checked(data)


def load(file, allow, **kwds):
    """``turbodill.load(file, allow=...)``: one pickle from a binary file."""
    return RestrictedUnpickler(file, allow=allow, **kwds).load()
