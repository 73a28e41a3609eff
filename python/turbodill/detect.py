"""Find what cannot be pickled, and what a function needs (dill's
``dill.detect``)."""

import builtins
import dis
import gc
import inspect
from collections.abc import Callable
from typing import Any

from ._tracing import trace
from .pointers import at, children, parent, parents, reference

__all__ = [
    "at",
    "baditems",
    "badobjects",
    "badtypes",
    "children",
    "code",
    "errors",
    "freevars",
    "getmodule",
    "globalvars",
    "nestedcode",
    "nestedglobals",
    "outermost",
    "parent",
    "parents",
    "reference",
    "referredglobals",
    "referrednested",
    "trace",
    "varnames",
]


def _pickles(obj, exact=False, safe=False):
    from . import pickles

    return pickles(obj, exact=exact, safe=safe)


def _attributes(obj):
    for name in dir(obj):
        try:
            yield name, getattr(obj, name)
        except Exception:
            continue


def errors(obj: object, depth: int = 0, exact: bool = False, safe: bool = False) -> Any:
    """The exception pickling ``obj`` raises, or None. With ``depth > 0``, a
    dict of those of its attributes that fail, each explored ``depth - 1``
    further."""
    from . import copy

    if depth > 0:
        found = {}
        for name, value in _attributes(obj):
            err = errors(value, depth - 1, exact, safe)
            if err is not None and err != {}:
                found[name] = err
        return found
    try:
        copy(obj)
    except Exception as exc:  # reported, not raised
        return exc
    return None


def badobjects(obj: object, depth: int = 0, exact: bool = False, safe: bool = False) -> Any:
    """``obj`` if it does not pickle (else None); with ``depth > 0``, a dict
    of its attributes that do not."""
    if depth > 0:
        return {
            name: badobjects(value, depth - 1, exact, safe)
            for name, value in _attributes(obj)
            if not _pickles(value, exact, safe)
        }
    return None if _pickles(obj, exact, safe) else obj


def badtypes(obj: object, depth: int = 0, exact: bool = False, safe: bool = False) -> Any:
    """Like ``badobjects``, giving the types of what does not pickle."""
    if depth > 0:
        return {
            name: badtypes(value, depth - 1, exact, safe)
            for name, value in _attributes(obj)
            if not _pickles(value, exact, safe)
        }
    return None if _pickles(obj, exact, safe) else type(obj)


def baditems(obj: Any, exact: bool = False, safe: bool = False) -> list[Any]:
    """The items of a container (the values of a mapping) that do not pickle."""
    if not hasattr(obj, "__iter__"):
        return [bad for bad in (badobjects(obj, 0, exact, safe),) if bad is not None]
    items = obj.values() if callable(getattr(obj, "values", None)) else obj
    bad: list[Any] = []
    for item in items:
        if not _pickles(item, exact, safe) and not any(item is b for b in bad):
            bad.append(item)
    return bad


def code(func):
    """The code object of a function, method, traceback, frame or code
    object; None for anything else."""
    if inspect.ismethod(func):
        func = func.__func__
    if inspect.isfunction(func):
        func = func.__code__
    if inspect.istraceback(func):
        func = func.tb_frame
    if inspect.isframe(func):
        func = func.f_code
    return func if inspect.iscode(func) else None


def nestedcode(func, recurse=True):
    """The code objects of the functions, classes and comprehensions defined
    inside ``func`` (all levels down with ``recurse``), as a list."""
    found = set()
    todo = [code(func)]
    while todo:
        outer = todo.pop()
        for const in getattr(outer, "co_consts", ()):
            if inspect.iscode(const) and const not in found:
                found.add(const)
                if recurse:
                    todo.append(const)
    return list(found)


def nestedglobals(func, recurse=True):
    """The names ``func``'s bytecode loads, stores or deletes as globals
    (and, with ``recurse``, that of the code nested in it), as a list."""
    names = set()
    for co in [code(func), *(nestedcode(func) if recurse else ())]:
        if co is None:
            continue
        for instruction in dis.get_instructions(co):
            if instruction.opname in _GLOBAL_OPCODES:
                names.add(instruction.argval)
    return list(names)


_GLOBAL_OPCODES = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"})


def globalvars(func: Callable[..., Any], recurse: bool = True, builtin: bool = False) -> dict[str, Any]:
    """The globals ``func`` refers to, ``{name: value}``: with ``recurse``,
    the names its bytecode uses as globals, and those of the functions it
    reaches through them and through its closure; without, every name in
    its ``co_names``. Builtins only with ``builtin``."""
    return _globalvars(func, recurse, builtin, set())


def _globalvars(func, recurse, builtin, visiting):
    if inspect.ismethod(func):
        func = func.__func__
    if not (inspect.isfunction(func) or inspect.iscode(func)) or id(func) in visiting:
        return {}
    visiting.add(id(func))
    namespace = dict(vars(builtins)) if builtin else {}
    names = set()
    if inspect.isfunction(func):
        for cell in func.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            found = _globalvars(contents, recurse, builtin, visiting)
            names.update(found)
            namespace.update(found)
        namespace.update(func.__globals__)
        co = func.__code__
    else:
        co = func
    if not recurse:
        names.update(co.co_names)
    else:
        names.update(nestedglobals(co))
        for name in list(names):
            names.update(_globalvars(namespace.get(name), True, builtin, visiting))
    return {name: namespace[name] for name in names if name in namespace}


def referredglobals(func, recurse=True, builtin=False):
    """The names of the globals ``func`` refers to (``globalvars``' keys)."""
    return globalvars(func, recurse, builtin).keys()


def referrednested(func, recurse=True):
    """The functions (and frames, methods) alive whose code is nested in
    ``func``: found through the garbage collector, so only those that exist
    (an inner function exists once ``func`` has run)."""
    found = []
    for co in nestedcode(func, recurse):
        for holder in gc.get_referrers(co):
            if (
                getattr(getattr(holder, "__func__", None), "__code__", None) is co
                or getattr(holder, "__code__", None) is co
                or getattr(holder, "f_code", None) is co
            ) and not any(holder is f for f in found):
                found.append(holder)
    return found


def varnames(func):
    """``(local variable names, those of them that nested functions use)``
    of ``func``; ``()`` for what has no code."""
    co = code(func)
    if co is None:
        return ()
    return co.co_varnames, co.co_cellvars


def outermost(func):
    """The global object that encloses ``func``: for a closure, the
    outermost function it was defined in; for a top-level function, the
    function itself; None when nothing in its globals encloses it."""
    if inspect.ismethod(func):
        func = func.__func__
    if not inspect.isfunction(func):
        return None
    target = func.__code__
    for value in list(func.__globals__.values()):
        if inspect.isfunction(value) and (value.__code__ is target or target in nestedcode(value)):
            return value
    return None


def getmodule(object, _filename=None, force=False):
    """The module ``object`` was defined in (``inspect.getmodule``); with
    ``force``, ``builtins`` for a builtin found by name."""
    module = inspect.getmodule(object, _filename)
    if module is not None or not force:
        return module
    name = getattr(object, "__name__", None)
    return builtins if name is not None and getattr(builtins, name, None) is object else None


def freevars(func: Callable[..., Any]) -> dict[str, Any]:
    """The variables ``func`` closes over, ``{name: value}`` (empty cells
    are left out)."""
    func = getattr(func, "__func__", func)
    code, closure = getattr(func, "__code__", None), getattr(func, "__closure__", None)
    if code is None or not closure:
        return {}
    found = {}
    for name, cell in zip(code.co_freevars, closure):
        try:
            found[name] = cell.cell_contents
        except ValueError:
            continue
    return found
