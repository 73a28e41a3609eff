"""Loads the standard library's ``multiprocessing`` submodules a second time,
as ``turbodill.multiprocessing.<name>``, so that this package is a drop-in for
``multiprocessing`` whose pickler is turbodill, without touching the stdlib's
modules (users who import ``multiprocessing`` keep the stdlib's pickler).

Modules that pick a pickler, or import one that does, are loaded from the
stdlib's source files under this package's name: their relative imports then
reach this package's copies. Modules that never pickle are shared with the
stdlib (one process registry, one resource tracker, one heap), so the two
packages' processes, locks and queues work together.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import multiprocessing.context as _stdlib_context
import multiprocessing.reduction as _stdlib_reduction
import os
import sys

STDLIB_DIR = os.path.dirname(multiprocessing.__file__)

# Loaded again under this package: each picks the pickler, or imports a
# module that does, or starts interpreters that must import this package.
COPIED = frozenset(
    {
        "connection",
        "context",
        "forkserver",
        "managers",
        "pool",
        "popen_forkserver",
        "popen_spawn_posix",
        "popen_spawn_win32",
        "queues",
        "reduction",
        "spawn",
    }
)
# The stdlib's own modules, shared.
SHARED = frozenset(
    {
        "dummy",
        "heap",
        "popen_fork",
        "process",
        "resource_sharer",
        "resource_tracker",
        "shared_memory",
        "sharedctypes",
        "synchronize",
        "util",
    }
)

# Children started by spawn and forkserver run a command that imports the
# start-up module by its absolute name: theirs must import this package.
_COMMAND_LINES = {
    "spawn": "'from multiprocessing.spawn import",
    "forkserver": "'from multiprocessing.forkserver import",
}


class _CopyLoader(importlib.machinery.SourceFileLoader):
    def __init__(self, package, name, path, fixup):
        super().__init__(f"{package}.{name}", path)
        self._package = package
        self._short_name = name
        self._fixup = fixup

    def get_code(self, fullname):
        command = _COMMAND_LINES.get(self._short_name)
        if command is None:
            return super().get_code(fullname)  # the stdlib's cached bytecode
        source = self.get_data(self.path).decode("utf-8")
        if source.count(command) != 1:
            raise ImportError(
                f"turbodill.multiprocessing does not know this Python's {self._short_name}.py "
                f"(expected one {command[1:]!r})",
                name=fullname,
            )
        source = source.replace(command, command.replace("'from multiprocessing.", f"'from {self._package}."))
        return compile(source, self.path, "exec", dont_inherit=True)

    def exec_module(self, module):
        super().exec_module(module)
        if self._fixup is not None:
            self._fixup(module)


class _SharedLoader(importlib.abc.Loader):
    def __init__(self, stdlib_name):
        self._stdlib_name = stdlib_name

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # The import system returns what sys.modules holds after exec_module:
        # the stdlib's module itself, under this package's name too.
        sys.modules[module.__name__] = importlib.import_module(self._stdlib_name)


class Finder(importlib.abc.MetaPathFinder):
    """Finds ``<package>.<submodule>`` for the stdlib's submodules only."""

    def __init__(self, package, fixups):
        self._prefix = package + "."
        self._package = package
        self._fixups = fixups

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self._prefix):
            return None
        name = fullname[len(self._prefix) :]
        if name in SHARED or name.startswith("dummy."):
            return importlib.machinery.ModuleSpec(fullname, _SharedLoader("multiprocessing." + name))
        if name in COPIED:
            path = os.path.join(STDLIB_DIR, name + ".py")
            loader = _CopyLoader(self._package, name, path, self._fixups.get(name))
            return importlib.util.spec_from_file_location(fullname, path, loader=loader)
        return None


def share_context_state(context):
    """The copied ``context`` module keeps the stdlib's exception classes
    (``except multiprocessing.TimeoutError`` still catches) and the stdlib's
    record of the process being spawned: the shared modules (a Lock's or a
    stdlib Queue's ``__getstate__``, the authkey's ``__reduce__``) ask the
    stdlib's context whether a spawn is under way."""
    for name in ("ProcessError", "BufferTooShort", "TimeoutError", "AuthenticationError"):
        shared = getattr(_stdlib_context, name)
        setattr(context, name, shared)
        setattr(context.BaseContext, name, shared)
    context._tls = _stdlib_context._tls


stdlib_extra_reducers = _stdlib_reduction.ForkingPickler._extra_reducers
