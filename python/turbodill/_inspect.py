"""``turbodill.inspect``: what a pickle would import and call, read from its
opcodes without running any of them.

The walk is native (``src/inspect/``): it returns raw names as the payload
spells them. Here they become the names the unpickler would import (Python 2
names mapped below protocol 3, as ``_pickle.c`` maps them; extension codes
looked up in ``copyreg``'s registry, without importing anything), then a
report, or findings for an allowlist to judge.
"""

import copyreg
import dataclasses
import pickle
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

from . import _native, _signing
from ._allowlist import Allowlist
from ._typing import Buffer
from .session import MAGIC as SESSION_MAGIC

DATA = Allowlist("data")


def fixed_import(module, name, proto, fix_imports):
    """The (module, name) the unpickler imports for a global the payload
    names: with ``fix_imports`` (the default), below protocol 3, Python 2
    names map to their Python 3 homes."""
    if fix_imports and proto < 3:
        if (module, name) in NAME_MAPPING:
            return NAME_MAPPING[(module, name)]
        module = IMPORT_MAPPING.get(module, module)
    return module, name


class Findings:
    """The walk's findings with names resolved: ``imports`` holds
    ``(name, resolved, count)`` per global the payload names, ``calls`` holds
    ``(kind, name, method, count)``: ``kind`` is ``"call"`` (the global is
    called), ``"instance"`` (``method`` of an object calling the global made)
    or ``"global"`` (``method`` of the global itself); ``name`` is None when
    the walk could not name it."""

    __slots__ = ("native", "proto", "imports", "calls", "extension_codes")

    def __init__(self, native, fix_imports=True):
        self.native = native
        self.proto = native["proto"] or 0  # the unpickler's, for name mapping
        self.imports = []
        self.extension_codes = {}
        for kind, first, second, count in native["globals"]:
            resolved = True
            if kind == "global":
                name = ".".join(fixed_import(first, second, self.proto, fix_imports))
            elif kind == "extension":
                pair = copyreg._inverted_registry.get(first)
                resolved = pair is not None
                name = (
                    ".".join(fixed_import(*pair, self.proto, fix_imports)) if resolved else f"<extension code {first}>"
                )
                self.extension_codes[first] = name if resolved else None
            else:  # an attribute fetched with getattr(global, name)
                base, resolved, _ = self.imports[first]
                name = f"{base}.{second}"
            self.imports.append((name, resolved, count))
        self.calls = [
            (kind, None if index is None else self.imports[index][0], method, count)
            for kind, index, method, count in native["calls"]
        ]

    @property
    def dynamic_globals(self):
        return self.native["dynamic_globals"]

    @property
    def persistent_ids(self):
        return self.native["persistent_ids"]


def _callable_name(kind, name, method):
    if kind == "call":
        return name or "<dynamic>"
    if kind == "instance":
        return f"{name}(...).{method}" if name else f"<dynamic>.{method}"
    return f"{name}.{method}"


def _counts(pairs):
    counts = {}
    for key, count in pairs:
        counts[key] = counts.get(key, 0) + count
    return counts


@dataclasses.dataclass(frozen=True)
class InspectReport:
    """What loading a pickle would do, read from its opcodes alone.

    ``globals`` counts every global the payload would import (GLOBAL,
    STACK_GLOBAL, INST, extension codes, and ``getattr(G, "name")`` lookups,
    reported as ``G.name``). ``callables`` counts what its opcodes would
    call: a global (``"collections.OrderedDict"``), a method of an object a
    global made (``"uuid.UUID(...).__setstate__"``: BUILD, and APPEND(S),
    SETITEM(S), ADDITEMS on objects that are not plain containers), a method
    of a global itself (``"os.environ.__setitem__"``), or ``"<dynamic>"``
    when the callable is not a named global. Counts are of opcodes.

    ``data_only`` is True when ``loads(data, allow="data")`` accepts the
    payload: it is statically resolvable, everything it imports is in the
    "data" allowlist, it calls only that list's callables and methods of
    objects they made, and it has no persistent ids.
    """

    protocol: int  # PROTO's argument, or the highest protocol of its opcodes
    size: int  # bytes of the first pickle (through STOP)
    trailing_bytes: int  # bytes after it (more pickles, or garbage)
    opcode_count: int
    frame_count: int
    globals: dict
    callables: dict
    extension_codes: dict  # code -> the global copyreg registers for it, or None
    persistent_ids: tuple  # each id, or None when not a statically known str
    buffer_count: int  # out-of-band buffers (NEXT_BUFFER)
    memo_size: int  # one more than the largest memo index stored into
    tuple_depth: int  # deepest nesting of tuples in tuples
    statically_resolvable: bool  # every global is named by known strings
    data_only: bool
    signed: bool  # the payload came in a signed envelope (not verified here)


def report(findings, signed=False):
    native = findings.native
    return InspectReport(
        protocol=native["opcode_protocol"] if native["proto"] is None else native["proto"],
        size=native["size"],
        trailing_bytes=native["trailing"],
        opcode_count=native["opcodes"],
        frame_count=native["frames"],
        globals=_counts((name, count) for name, _, count in findings.imports),
        callables=_counts((_callable_name(kind, name, method), count) for kind, name, method, count in findings.calls),
        extension_codes=findings.extension_codes,
        persistent_ids=tuple(findings.persistent_ids),
        buffer_count=native["buffers"],
        memo_size=native["memo_size"],
        tuple_depth=native["tuple_depth"],
        statically_resolvable=not findings.dynamic_globals and all(resolved for _, resolved, _ in findings.imports),
        data_only=DATA.refusal(findings) is None,
        signed=signed,
    )


def _what_it_is(data):
    """What ``data``, which fails at its first opcode, is instead."""
    if not data:
        return "the data is empty"
    head = bytes(data[:64])
    for cut in range(4):  # (a character cut by the 64-byte prefix)
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text and all(c.isprintable() or c in "\t\r\n" for c in text):
            return f"the data is text ({text[:20]!r})"
        break
    return f"it starts with {head[:8]!r}"


def _walk(data, signed):
    """The native walk of ``data``. Input that fails at its first opcode and
    does not start as pickles of protocol 2 and later do is most likely no
    pickle at all: the error says what it looks like instead."""
    try:
        return _native.inspect_opcodes(data)
    except _native.InspectError as e:
        if e.offset != 0 or bytes(data[:1]) == pickle.PROTO:
            raise
        if bytes(data[: len(SESSION_MAGIC)]) == SESSION_MAGIC:
            key = " with --key-env VAR" if signed else ""
            message = f"not a pickle but a turbodill session: `python -m turbodill session-info FILE{key}` lists it"
        else:
            message = f"not a pickle: {_what_it_is(data)} (read as a pickle: {e})"
        clearer = _native.InspectError(message)
        clearer.offset, clearer.truncated = e.offset, e.truncated
        raise clearer from None


def inspect(data: Buffer, *, fix_imports: bool = True) -> InspectReport:
    """Report what loading ``data`` (a pickle, or a signed envelope holding
    one) would import and call, without importing or running anything.
    Malformed input raises ``InspectError`` (an ``UnpicklingError``)."""
    signed = _signing.is_signed(data)
    if signed:
        data = _signing.unverified_payload(data)
    return report(Findings(_walk(data, signed), fix_imports), signed)
