"""Sessions: save a module's namespace (``__main__`` by default) to a file and
restore it later, in this interpreter or a fresh one.

The API is dill's: ``dump_module``/``load_module``/``load_module_asdict`` and
the older ``dump_session``/``load_session``. What differs:

- One variable that cannot be pickled does not sink the session: it is left
  out, with a ``SessionWarning`` naming it, its type and why (``strict=True``
  raises instead). Loading restores every entry it can and warns about the
  others (a module that is missing, say).
- The file is a small MessagePack header (readable with ``session_info``
  without unpickling anything) and one pickle per entry. The entries share
  one memo, so variables that share objects still share them after loading.
  A session written by another Python minor version is refused before any
  entry is unpickled.
- Writing replaces the file atomically (a temporary file in the same
  directory, fsync, rename): a failed or interrupted dump leaves the old file
  intact. Files are created with mode 0600; neither writing nor reading goes
  through a symbolic link. Without a filename the session goes to a per-user
  file (``default_session_path()``), never to a shared temporary directory.
  A temporary file left behind by a writer that was killed is removed by the
  next dump to the same file, once its writer (named in the file's name by
  host and process id) is gone.
- ``key=`` signs the session as ``dumps(obj, key=...)`` signs a pickle: the
  whole file (header and every entry) is the payload of a signed envelope,
  checked before anything in it is read. A signed session loads only with a
  key, and with a key only a signed session loads.

Loading a session runs code, like any pickle: load only sessions you wrote.
"""

import contextlib
import dataclasses
import datetime
import errno
import importlib
import io
import os
import pickle
import re
import socket
import stat
import sys
import tempfile
import time
import types
import warnings
from typing import IO, Any

from . import _native, _signing
from ._signing import SignatureError
from ._typing import Key, Path

__all__ = [
    "EntryInfo",
    "SessionError",
    "SessionInfo",
    "SessionVersionError",
    "SessionWarning",
    "default_session_path",
    "dump_module",
    "dump_session",
    "load_module",
    "load_module_asdict",
    "load_session",
    "session_info",
]

FORMAT_VERSION = 1
#: The first bytes of a session file (written by src/session/header.rs).
MAGIC = b"TDSESS\r\n"
# The persistent ids the native pickler writes for the module and its namespace.
_MODULE_PID = _native._SESSION_MODULE_PID
_NAMESPACE_PID = _native._SESSION_NAMESPACE_PID
# Module bookkeeping that belongs to the interpreter, not to the session.
_NOT_SAVED = frozenset(
    {"__builtins__", "__loader__", "__spec__", "__name__", "__file__", "__cached__", "__package__", "__session__"}
)
# Values that are cheaper to save than to look up in other modules, and whose
# identity means nothing (`refimported` leaves them alone).
_ATOMS = (type(None), bool, int, float, complex, str, bytes, tuple)


class SessionError(pickle.UnpicklingError):
    """A file that is not a session this version of turbodill can load."""


class SessionVersionError(SessionError):
    """A session written by another Python version (its pickles would not
    mean the same thing here)."""


class SessionWarning(UserWarning):
    """Entries left out of a session, or that failed to load. ``entries``
    lists ``(name, type name, exception)``."""

    def __init__(self, message, entries):
        super().__init__(message)
        self.entries = entries


@dataclasses.dataclass(frozen=True)
class EntryInfo:
    name: str
    type: str
    kind: str  # "value", "module" (imported on load) or "import" (re-imported name)
    size: int


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """What a session file holds, read from its header alone."""

    format: int
    python: tuple
    implementation: str
    turbodill: str
    module: str
    created: datetime.datetime
    protocol: int
    entries: list
    skipped: list  # (name, type name, reason) of the entries left out
    size: int
    signed: bool  # the file is a signed envelope (checked with the key given)


def default_session_path() -> str:
    """The per-user file sessions go to when no filename is given:
    ``$XDG_STATE_HOME/turbodill/session.pkl`` (``~/.local/state`` when unset;
    ``%LOCALAPPDATA%`` on Windows). The directory is made private (0700)."""
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
    else:
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    directory = os.path.join(base, "turbodill")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return os.path.join(directory, "session.pkl")


# ---- dumping ----------------------------------------------------------------


class _ImportedName:
    """A name that ``refimported`` re-imports on load: ``getattr(module, name)``."""

    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __reduce__(self):
        return getattr, (sys.modules[self.module], self.name)


def _type_name(value):
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _target_module(module):
    if module is None:
        return sys.modules["__main__"]
    if isinstance(module, str):
        return importlib.import_module(module)
    if isinstance(module, types.ModuleType):
        return module
    raise TypeError(f"module must be a module or a module name, not {type(module).__name__}")


# What IPython/Jupyter keep in the user namespace: its helpers and the
# input/output history, which belong to the running shell (restoring `In` or
# `Out` would detach the shell's history from the namespace).
_IPYTHON_NAMES = re.compile(r"(exit|quit|get_ipython|In|Out|_ih|_oh|_dh|_i{1,3}|_i\d+|_{1,3}|_\d+)\Z")


def _is_ipython_namespace(namespace):
    helper = namespace.get("get_ipython")
    return helper is not None and getattr(helper, "__module__", "").startswith("IPython")


def _imported_elsewhere(module, namespace):
    """For `refimported`: the entries whose value is the same object under the
    same name in another imported module, as {name: that module's name}."""
    wanted = {name for name, value in namespace.items() if not isinstance(value, (_ATOMS, types.ModuleType))}
    found = {}
    for mod_name, mod in list(sys.modules.items()):
        if mod is module or mod is None or not wanted:
            continue
        mod_dict = getattr(mod, "__dict__", None)
        if not isinstance(mod_dict, dict):
            continue
        for name in wanted & mod_dict.keys():
            if mod_dict[name] is namespace[name]:
                found[name] = mod_name
        wanted -= found.keys()
    return found


def _entries_of(module, refimported):
    """`(name, value to pickle, kind, type name)` for each entry of the
    module's namespace."""
    namespace = module.__dict__
    imported = _imported_elsewhere(module, namespace) if refimported else {}
    ipython = _is_ipython_namespace(namespace)
    entries = []
    for name, value in list(namespace.items()):
        if name in _NOT_SAVED or (ipython and _IPYTHON_NAMES.match(name)):
            continue
        if name in imported:
            entries.append((name, _ImportedName(imported[name], name), "import", _type_name(value)))
        elif isinstance(value, types.ModuleType) and sys.modules.get(getattr(value, "__name__", None)) is value:
            entries.append((name, value, "module", _type_name(value)))
        else:
            entries.append((name, value, "value", _type_name(value)))
    return entries


def _session_bytes(module, refimported, strict, protocol):
    entries = _entries_of(module, refimported)
    pickles = _native._session_pickle_entries(module, [(name, value) for name, value, _, _ in entries], protocol)
    saved, skipped, payloads = [], [], []
    for (name, _, kind, type_name), result in zip(entries, pickles):
        if isinstance(result, BaseException):
            if strict or not isinstance(result, Exception):
                result.add_note(f"in session entry {name!r} of module {module.__name__!r}")
                raise result
            skipped.append((name, type_name, result))
            continue
        saved.append({"name": name, "type": type_name, "kind": kind, "size": len(result)})
        payloads.append(result)
    header = {
        "format": FORMAT_VERSION,
        "python": tuple(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "turbodill": _native.__version__,
        "module": module.__name__,
        "created": time.time(),
        "protocol": protocol,
        "entries": saved,
        "skipped": [{"name": n, "type": t, "reason": _reason(e)} for n, t, e in skipped],
    }
    if skipped:
        _warn(f"left {_entries(len(skipped))} out of the session of {module.__name__!r}", skipped)
    return [_native._session_pack_header(header), *payloads]


def _reason(exc):
    return f"{type(exc).__name__}: {exc}"


def _entries(count):
    return f"{count} entry" if count == 1 else f"{count} entries"


def _warn(summary, entries):
    """Warn about `entries`, attributed to the first caller outside turbodill."""
    lines = "".join(f"\n  {name} ({type_name}): {_reason(exc)}" for name, type_name, exc in entries)
    frame, stacklevel = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "turbodill":
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(SessionWarning(summary + ":" + lines, entries), stacklevel=stacklevel)


def _writer_tag():
    """Who writes a temporary file, as its name says: `pid@host` (the host
    keeps a dump on one machine from judging a writer on another that shares
    the directory)."""
    return f"{os.getpid()}@{re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname())}"


def _process_gone(pid):
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, run by another user
        return False
    return False


def _remove_abandoned(directory, base):
    """Remove the temporary files of dumps to `base` whose writer on this
    host is gone (killed before it could clean up). A file whose writer
    lives, or cannot be told, is left alone."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return
    own = re.compile(rf"\.{re.escape(base)}\.(\d+)@(.+)\.[^.]+\.tmp\Z")
    host = _writer_tag().partition("@")[2]
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = own.match(name)
        if match and match[2] == host and _process_gone(int(match[1])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


def _write_atomically(path, chunks):
    """Write `chunks` to `path` through a private temporary file in the same
    directory, renamed over `path` once it is on disk. The rename replaces a
    directory entry and never follows a symbolic link, so a link planted at
    `path` after the check below is replaced, not written through."""
    path = os.fspath(path)
    _refuse_symlink(path, "write")
    directory, base = os.path.split(os.path.abspath(path))
    _remove_abandoned(directory, base)
    fd, temporary = tempfile.mkstemp(prefix=f".{base}.{_writer_tag()}.", suffix=".tmp", dir=directory)  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX; a no-op where directories
    cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_symlink(path, action):
    try:
        is_link = stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return
    if is_link:
        raise OSError(errno.ELOOP, f"refusing to {action} a session through a symbolic link", path)


def dump_module(
    filename: Path | IO[bytes] | None = None,
    module: types.ModuleType | str | None = None,
    refimported: bool = False,
    *,
    key: bytes | str | None = None,
    **kwds: Any,
) -> str | bytes | None:
    """Save ``module``'s namespace (``__main__`` by default; a module or its
    name) to ``filename`` (a path or a binary file object; by default
    ``default_session_path()``). Returns the path written, or None for a file
    object. ``key`` signs the session (see ``turbodill.dumps``): it then
    loads only with that key.

    Functions and classes defined in the module are saved by value, with the
    module's namespace as their globals on load; imported modules and objects
    of importable modules by reference. ``refimported=True`` also saves
    objects imported from other modules (``from os import environ``) as
    references, re-imported on load. Entries that cannot be pickled are left
    out with a ``SessionWarning``; ``strict=True`` raises instead.
    ``protocol`` chooses the pickle protocol (default 5). dill's pickler
    options ``byref``, ``recurse`` and ``fmode`` are accepted and ignored, as
    dill ignores them for sessions.
    """
    if "main" in kwds:
        module = kwds.pop("main")
    if "byref" in kwds and refimported is False:
        refimported = kwds.pop("byref")
    strict = kwds.pop("strict", False)
    protocol = kwds.pop("protocol", None)
    protocol = pickle.HIGHEST_PROTOCOL if protocol is None or protocol < 0 else protocol
    for ignored in ("byref", "recurse", "fmode"):
        kwds.pop(ignored, None)
    if kwds:
        raise TypeError(f"dump_module() got unexpected keyword arguments: {', '.join(sorted(kwds))}")
    chunks = _session_bytes(_target_module(module), refimported, strict, protocol)
    if key is not None:
        chunks = _signing.sign_chunks(chunks, key)
    if filename is not None and hasattr(filename, "write"):
        for chunk in chunks:
            filename.write(chunk)
        return None
    path = default_session_path() if filename is None else os.fspath(filename)
    _write_atomically(path, chunks)
    return path


def dump_session(
    filename: Path | IO[bytes] | None = None,
    main: types.ModuleType | str | None = None,
    byref: bool = False,
    **kwds: Any,
) -> str | bytes | None:
    """dill's older name: ``dump_module(filename, module=main, refimported=byref)``."""
    return dump_module(filename, module=main, refimported=byref, **kwds)


# ---- loading ----------------------------------------------------------------


@contextlib.contextmanager
def _opened(filename):
    """A binary file to read the session from: a file object as given, or
    the path opened without following a symbolic link."""
    if hasattr(filename, "read"):
        yield filename
        return
    path = default_session_path() if filename is None else os.fspath(filename)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "refusing to read a session through a symbolic link", path) from None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise SessionError(f"{path!r} is not a regular file")
        yield file


def _unsealed(file, key):
    """`(stream, start)`: where the session's own bytes are read from, and
    the first of them, already read. An unsigned session is read on from
    `file`; a signed one is read whole and its signature checked first. A key
    given for an unsigned session, or none for a signed one, is refused with
    the errors of signed payloads."""
    start = file.read(len(_signing.MAGIC))
    if start != _signing.MAGIC:
        if key is not None:
            raise SignatureError(_signing.NOT_SIGNED)
        return file, start
    if key is None:
        raise SignatureError(_signing.SIGNED_WITHOUT_KEY)
    return io.BytesIO(_signing.verify(start + file.read(), key)), b""


def _read_header(file, source, start):
    """Read and check the header at the start of `file` (`start`: its first
    bytes, already read): `(header, the size the entries' pickles must
    have)`. Reads nothing past the header."""
    try:
        prefix = start + file.read(_native._SESSION_PREFIX_SIZE - len(start))
        header_bytes = prefix + file.read(_native._session_header_size(prefix) - len(prefix))
        header = _native._session_read_header(header_bytes)
    except ValueError as exc:
        raise SessionError(f"{source}: {exc}") from None
    if header["format"] > FORMAT_VERSION:
        raise SessionError(
            f"{source} is a format-{header['format']} session, written by a newer turbodill "
            f"({header['turbodill']}); this one ({_native.__version__}) reads format {FORMAT_VERSION}"
        )
    return header, sum(entry["size"] for entry in header["entries"])


def _check_size(actual, expected, source):
    if actual != expected:
        raise SessionError(f"{source} is truncated or corrupt: its entries take {actual} bytes, not {expected}")


def _check_interpreter(header, source):
    written = header["python"][:2], header["implementation"]
    running = tuple(sys.version_info[:2]), sys.implementation.name
    if written != running:
        raise SessionVersionError(
            f"{source} was written by {header['implementation']} {'.'.join(map(str, header['python']))} and "
            f"cannot be loaded by {sys.implementation.name} {sys.version.split()[0]}: pickled code and classes "
            f"are specific to a Python minor version"
        )


class _SessionUnpickler(pickle.Unpickler):
    """Resolves the session's module and namespace to the ones loaded into."""

    def __init__(self, file, module):
        super().__init__(file)
        self._module = module

    def persistent_load(self, pid):
        if pid == _NAMESPACE_PID:
            return self._module.__dict__
        if pid == _MODULE_PID:
            return self._module
        raise pickle.UnpicklingError(f"unknown persistent id in a session: {pid!r}")


def _load_entries(header, payload, module, strict, source):
    """Load each entry into ``module``'s namespace; entries that fail are
    reported and the others restored. The entries share one memo, as they
    were pickled. After a failure the unpickler may hold unread bytes of the
    failed entry, so the stream is moved to the next entry by size and a
    fresh unpickler takes over the memo; memo indices in sessions are
    explicit, so the objects the failed entry never made are simply missing
    (an entry that shares one fails too, and says so; what entries share
    only by accident, such as strs and globals, each entry writes itself)."""
    stream = io.BytesIO(payload)
    unpickler = _SessionUnpickler(stream, module)
    failed = []
    end = 0
    for entry in header["entries"]:
        end += entry["size"]
        try:
            value = unpickler.load()
            if stream.tell() != end:
                raise SessionError(f"entry {entry['name']!r} is not {entry['size']} bytes long")
        except Exception as exc:
            if strict:
                exc.add_note(f"in session entry {entry['name']!r} of {source}")
                raise
            failed.append((entry["name"], entry["type"], exc))
            memo = unpickler.memo
            unpickler = _SessionUnpickler(stream, module)
            unpickler.memo = memo
            stream.seek(end)
        else:
            module.__dict__[entry["name"]] = value
    if failed:
        _warn(f"{_entries(len(failed))} of {source} could not be loaded", failed)


def _open(filename, key):
    """The checked header and the entries' bytes of a session to load."""
    source = _describe(filename)
    with _opened(filename) as file:
        stream, start = _unsealed(file, key)
        header, size = _read_header(stream, source, start)
        _check_interpreter(header, source)
        payload = stream.read()
    _check_size(len(payload), size, source)
    return header, payload, source


def _describe(filename):
    if hasattr(filename, "read"):
        return f"session {getattr(filename, 'name', filename)!r}"
    return f"session {os.fspath(filename) if filename is not None else default_session_path()!r}"


def load_module(
    filename: Path | IO[bytes] | None = None,
    module: types.ModuleType | str | None = None,
    *,
    key: Key | None = None,
    **kwds: Any,
) -> types.ModuleType | None:
    """Restore a session saved by ``dump_module`` into ``module`` (a module or
    its name), by default the module it was saved from: ``__main__``, an
    importable module (imported), or a new module for one that was built at
    run time. Entries are assigned into the module's namespace; names it
    already has and the session lacks are kept. Entries that fail to load are
    reported with a ``SessionWarning`` (``strict=True`` raises). Returns the
    module when it was neither given nor ``__main__``, else None (as dill).
    ``key`` (one key or the accepted keys) loads only a session signed with
    one of them, checked before anything in it is read.
    """
    if "main" in kwds:
        module = kwds.pop("main")
    strict = kwds.pop("strict", False)
    if kwds:
        raise TypeError(f"load_module() got unexpected keyword arguments: {', '.join(sorted(kwds))}")
    header, payload, source = _open(filename, key)
    given = module is not None
    if given:
        target = _target_module(module)
    elif header["module"] == "__main__":
        target = sys.modules["__main__"]
    else:
        try:
            target = importlib.import_module(header["module"])
        except ImportError:
            target = types.ModuleType(header["module"])
    _load_entries(header, payload, target, strict, source)
    return None if given or target is sys.modules.get("__main__") else target


def load_session(
    filename: Path | IO[bytes] | None = None, main: types.ModuleType | str | None = None, **kwds: Any
) -> types.ModuleType | None:
    """dill's older name: ``load_module(filename, module=main)``."""
    return load_module(filename, module=main, **kwds)


def load_module_asdict(
    filename: Path | IO[bytes] | None = None, update: bool = False, *, key: Key | None = None, **kwds: Any
) -> dict[str, Any]:
    """Load a session into a new namespace and return it as a dict, leaving
    every live module alone. ``update=True`` starts from a copy of the live
    module's namespace, so the result is that module as the session would
    leave it. The dict's ``__session__`` is the filename. ``key`` as for
    ``load_module``."""
    strict = kwds.pop("strict", False)
    if kwds:
        raise TypeError(f"load_module_asdict() got unexpected keyword arguments: {', '.join(sorted(kwds))}")
    header, payload, source = _open(filename, key)
    namespace = types.ModuleType(header["module"])
    if update:
        live = sys.modules.get(header["module"]) or importlib.import_module(header["module"])
        namespace.__dict__.update(live.__dict__)
    _load_entries(header, payload, namespace, strict, source)
    namespace.__dict__["__session__"] = str(filename) if filename is not None else default_session_path()
    return namespace.__dict__


def session_info(filename: Path | IO[bytes] | None = None, *, key: Key | None = None) -> SessionInfo:
    """What a session file holds, from its header alone: nothing in it is
    unpickled, imported or executed. A signed session needs its ``key`` (as
    for ``load_module``); its signature is checked first."""
    source = _describe(filename)
    with _opened(filename) as file:
        stream, start = _unsealed(file, key)
        header, size = _read_header(stream, source, start)
        entries_start = stream.tell()
        stream.seek(0, os.SEEK_END)
        _check_size(stream.tell() - entries_start, size, source)
        total = file.tell()
    return SessionInfo(
        format=header["format"],
        python=tuple(header["python"]),
        implementation=header["implementation"],
        turbodill=header["turbodill"],
        module=header["module"],
        created=datetime.datetime.fromtimestamp(header["created"], datetime.timezone.utc),
        protocol=header["protocol"],
        entries=[EntryInfo(**entry) for entry in header["entries"]],
        skipped=[(s["name"], s["type"], s["reason"]) for s in header["skipped"]],
        size=total,
        signed=stream is not file,
    )
