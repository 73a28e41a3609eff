"""Objects by address and by reference chains (dill's ``dill.pointers``):
``at``, ``reference``, ``parent``, ``parents``, ``children``."""

import collections
import gc
import re
import sys
import weakref

__all__ = ["parent", "reference", "at", "parents", "children"]

_PROXY_TYPES = (weakref.ProxyType, weakref.CallableProxyType)
# CPython's repr of a live proxy: "<weakproxy at 0x...; to 'T' at 0x...>".
_REFERENT_ADDRESS = re.compile(r" at (0x[0-9a-fA-F]+)>$")


def at(address, module=None):
    """The object whose ``id()`` is ``address``, searched among the objects
    the garbage collector tracks (or in ``module``'s namespace); raises
    ReferenceError if there is none, TypeError for a non-integer address."""
    for special in (None, True, False):
        if address == id(special):
            return special
    candidates = module.__dict__.values() if module else gc.get_objects()
    for obj in candidates:
        if id(obj) == address:
            return obj
    if not isinstance(address, int):
        raise TypeError(f"'{address}' is not a valid memory address")
    raise ReferenceError(f"Cannot reference object at '{hex(address)}'")


def reference(obj):
    """The address of what a weakref proxy refers to (``id(None)`` once it is
    dead); ``id(obj)`` for anything else."""
    if not isinstance(obj, _PROXY_TYPES):
        return id(obj)
    match = _REFERENT_ADDRESS.search(repr(obj))
    return int(match.group(1), 16) if match else id(None)


def parent(obj, objtype, ignore=()):
    """The nearest object of type ``objtype`` that ``obj`` refers to, or None
    (``parent(iter(a_list), list)`` is ``a_list``)."""
    found = parents(obj, objtype, 1, ignore).pop()
    return None if found is obj else found


def parents(obj, objtype, depth=1, ignore=()):
    """The chain of referents from ``obj`` to the nearest object of type
    ``objtype`` (a type or a tuple of types), at most ``depth`` steps away;
    ``[obj]`` if there is none."""
    return _chain(obj, objtype, gc.get_referents, depth, ignore)[::-1]


def children(obj, objtype, depth=1, ignore=()):
    """The chain of referrers from the nearest object of type ``objtype``
    that refers to ``obj`` (at most ``depth`` steps away) back to ``obj``;
    ``[obj]`` if there is none. ``ignore=(globals(),)`` leaves a namespace
    out of the search."""
    return _chain(obj, objtype, gc.get_referrers, depth, ignore)


def _chain(start, objtype, edges, max_depth, ignore):
    """Breadth-first search along ``edges`` for an instance of ``objtype``:
    ``[found, ..., start]``. The search's own objects and frames are not
    part of the graph."""
    ignore = ignore if hasattr(ignore, "__len__") else (ignore,)
    skipped = {id(x) for x in ignore}
    via = {id(start): None}  # id -> the object it was reached from
    queue = collections.deque([(start, 0)])
    skipped.update({id(via), id(queue), id(skipped), id(ignore)})
    frame = sys._getframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        skipped.add(id(frame))
        frame = frame.f_back
    del frame
    gc.collect()
    while queue:
        obj, depth = queue.popleft()
        if isinstance(obj, objtype):
            chain = [obj]
            while via[id(chain[-1])] is not None:
                chain.append(via[id(chain[-1])])
            return chain
        if depth >= max_depth:
            continue
        found = edges(obj)
        skipped.add(id(found))
        for nxt in found:
            if id(nxt) not in skipped and id(nxt) not in via:
                via[id(nxt)] = obj
                queue.append((nxt, depth + 1))
    return [start]
