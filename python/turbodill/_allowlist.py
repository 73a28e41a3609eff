"""Allowlists for restricted loading, and the built-in "data" preset.

An allowlist names the globals a payload may import and call, by dotted
path: ``"module.qualname"`` exactly, or ``"prefix.*"`` for every name
directly in ``prefix`` but dunder names (``"uuid.*"`` allows ``uuid.UUID``
but neither ``uuid.UUID.bytes``, ``uuid.__builtins__`` nor a submodule's
names). Entries without a dot name presets; ``"data"`` is the only one.

An allowlist judges the static report of a payload (``turbodill.inspect``),
so a restricted load refuses before a single opcode runs when:

- the payload imports a global the list does not name (or names a global
  with strings only known at load time, or an unregistered extension code);
- it calls a global the list names only as a value (see ``_DATA_VALUES``);
- it calls something that is not a named global (``<dynamic>``), calls a
  method of an object it could not trace to an allowed global, or calls a
  method of a global itself (BUILD, SETITEM(S), APPEND(S) or ADDITEMS on a
  class, function or module-level object: the payload would modify it);
- it has persistent ids and the unpickler has no ``persistent_load``.

``builtins.getattr`` is allowed in every list as a value: a payload may use
it only as ``getattr(G, "name")`` with both operands known, which the walk
reports as the global ``G.name`` and the list judges like any other (enums
and bound class methods pickle this way). Listing ``"builtins.getattr"``
explicitly allows calling it on anything.
"""

from pickle import UnpicklingError
from typing import Any

GETATTR = "builtins.getattr"

# The "data" preset: what the stdlib pickles plain data as, at protocols 0 to
# 5. Every callable here is harmless with any arguments a payload can build
# from opcodes and from these same callables: it builds a value, reads no
# file (ZoneInfo reads only its time zone database), imports nothing beyond
# its own module, and costs time and memory in proportion to the payload.
_DATA_CALLABLES = frozenset(
    {
        # Containers and numbers the opcodes cannot make directly below
        # protocol 4 (sets) or at all (complex).
        "builtins.set",
        "builtins.frozenset",
        "builtins.complex",
        # copyreg._reconstructor's base at protocols 0 and 1: object() is inert.
        "builtins.object",
        # bytes and bytearray below protocols 3 and 5. Served guarded: never
        # bytes(n) / bytearray(n) (an n-byte allocation from a few payload
        # bytes), and only the latin-1 encoding pickle uses.
        "builtins.bytes",
        "builtins.bytearray",
        # How protocols 0 to 2 write bytes: encode(text, "latin1"). Served
        # guarded: a str to latin-1 only, so no codec is looked up (or imported).
        "_codecs.encode",
        "codecs.encode",
        # Instances of classes at protocols 0 and 1. Served guarded: the base
        # must be object or a callable the list allows (the call is then that
        # base's constructor on cls, which the walk reports as a call of it).
        "copyreg._reconstructor",
        # Validating constructors of immutable values.
        "datetime.date",
        "datetime.time",
        "datetime.datetime",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "uuid.UUID",
        "ipaddress.IPv4Address",
        "ipaddress.IPv6Address",
        "ipaddress.IPv4Network",
        "ipaddress.IPv6Network",
        "ipaddress.IPv4Interface",
        "ipaddress.IPv6Interface",
        # Paths are strings with structure: making one touches no file.
        # (pathlib._local is their module on Python 3.13.)
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib._local.PurePath",
        "pathlib._local.PurePosixPath",
        "pathlib._local.PureWindowsPath",
        "pathlib._local.Path",
        "pathlib._local.PosixPath",
        "pathlib._local.WindowsPath",
        # ZoneInfo pickles as getattr(ZoneInfo, "_unpickle")(key, from_cache):
        # it validates the key (no absolute or parent paths) and reads that
        # zone from the system time zone database or the tzdata package.
        "zoneinfo.ZoneInfo",
        "zoneinfo.ZoneInfo._unpickle",
        # Containers filled from an iterable or through their own methods.
        # A defaultdict's factory is not called while loading; it can only
        # be a value this list allows. deque and defaultdict free their
        # contents recursively (CPython gives them no "trashcan"), so
        # restricted loading also bounds how many a payload makes.
        "collections.OrderedDict",
        "collections.Counter",
        "collections.deque",
        "collections.defaultdict",
    }
)

# Allowed as values, never called while loading (a payload that calls them
# is refused): the types plain data names as a defaultdict's factory.
# int(Decimal("1e999999999")) alone would compute a 10**999999999.
_DATA_VALUES = frozenset(
    {
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bool",
        "builtins.list",
        "builtins.dict",
        "builtins.tuple",
    }
)

# Left out on purpose: builtins.range (set(range(10**18)) never ends),
# fractions.Fraction (Fraction("1e999999999") computes 10**999999999),
# builtins.slice, enum classes, and anything whose call can reach code or
# the file system (getattr on arbitrary names, eval, exec, open, ...).

PRESETS = {"data": (_DATA_CALLABLES, _DATA_VALUES)}


class UnsafePickleError(UnpicklingError):
    """Restricted loading refused the payload before running any of it."""


class ForbiddenGlobalError(UnsafePickleError):
    """The payload would import or call a global outside the allowlist.
    ``name`` is the global's dotted name (None when it is not statically
    known)."""

    def __init__(self, message, name=None):
        super().__init__(message)
        self.name = name


class Allowlist:
    """The globals a restricted load may import and call."""

    __slots__ = ("_callables", "_values", "_modules", "explicit_getattr")

    _cache: dict[Any, "Allowlist"] = {}

    def __init__(self, allow):
        entries = (allow,) if isinstance(allow, str) else tuple(allow)
        callables, values, modules = set(), set(), set()
        for entry in entries:
            if not isinstance(entry, str):
                raise TypeError(f"allow entries are str, not {type(entry).__name__}")
            if entry in PRESETS:
                preset_callables, preset_values = PRESETS[entry]
                callables |= preset_callables
                values |= preset_values
            elif entry.endswith(".*") and len(entry) > 2 and "*" not in entry[:-2]:
                modules.add(entry[:-2])
            elif "." in entry and "*" not in entry and not entry.startswith(".") and not entry.endswith("."):
                callables.add(entry)
            else:
                raise ValueError(
                    f"allow entry {entry!r} is neither 'module.name', 'module.*' nor a preset ({', '.join(PRESETS)})"
                )
        self._callables = frozenset(callables)
        self._values = frozenset(values | {GETATTR})
        self._modules = frozenset(modules)
        self.explicit_getattr = GETATTR in callables

    @classmethod
    def of(cls, allow):
        """The allowlist for an ``allow=`` argument (cached per argument)."""
        if isinstance(allow, Allowlist):
            return allow
        key = allow if isinstance(allow, str) else tuple(allow)
        try:
            return cls._cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable entry: let the constructor say what is wrong
            return cls(key)
        if len(cls._cache) > 256:
            cls._cache.clear()
        found = cls._cache[key] = cls(key)
        return found

    def may_call(self, name):
        if name in self._callables:
            return True
        prefix, dot, rest = name.rpartition(".")
        return bool(dot) and prefix in self._modules and not (rest.startswith("__") and rest.endswith("__"))

    def may_import(self, name):
        return name in self._values or self.may_call(name)

    def refusal(self, findings, *, persistent_load=False):
        """Why a restricted load must refuse the payload of ``findings`` (an
        ``_inspect.Findings``): an exception to raise, or None when the list
        allows all of it."""
        if findings.dynamic_globals:
            return ForbiddenGlobalError(
                f"the payload names {findings.dynamic_globals} global(s) with strings known only at load time "
                "(not statically resolvable)"
            )
        for name, resolved, _count in findings.imports:
            if not resolved:
                return ForbiddenGlobalError(f"{name} is not registered with copyreg", name)
            if not self.may_import(name):
                return ForbiddenGlobalError(f"global '{name}' is forbidden: it is not in the allowlist", name)
        for kind, name, method, _count in findings.calls:
            if name is None:
                target = "<dynamic>" if method is None else f"a method ({method}) of <dynamic>"
                return ForbiddenGlobalError(f"the payload calls {target}: an object that is not an allowed global")
            if kind == "call" and not self.may_call(name):
                return ForbiddenGlobalError(
                    f"the payload calls '{name}', which the allowlist allows only as a value", name
                )
            if kind == "global":
                return ForbiddenGlobalError(
                    f"the payload would modify the global '{name}' (through its {method})", name
                )
        if findings.persistent_ids and not persistent_load:
            return UnsafePickleError("the payload has persistent ids, and the unpickler has no persistent_load")
        return None
