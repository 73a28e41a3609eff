"""Find what cannot be pickled, and what a function needs (dill's
``dill.detect``)."""

import inspect
import types
from collections.abc import Callable
from typing import Any


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


def _code_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def globalvars(func: Callable[..., Any], recurse: bool = True, builtin: bool = False) -> dict[str, Any]:
    """The globals ``func`` reads, ``{name: value}`` (and, with ``recurse``,
    those read by the functions it reaches); builtins only with ``builtin``."""
    func = inspect.unwrap(getattr(func, "__func__", func))
    if not isinstance(func, types.FunctionType):
        return {}
    found, seen, todo = {}, set(), [func]
    builtins_ns = func.__globals__.get("__builtins__", {})
    builtins_ns = getattr(builtins_ns, "__dict__", builtins_ns)
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        for name in _code_names(f.__code__):
            if name in f.__globals__:
                value = f.__globals__[name]
                found[name] = value
                if recurse and isinstance(value, types.FunctionType):
                    todo.append(value)
            elif builtin and name in builtins_ns:
                found[name] = builtins_ns[name]
        if recurse:
            todo.extend(v for v in freevars(f).values() if isinstance(v, types.FunctionType))
    return found


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
