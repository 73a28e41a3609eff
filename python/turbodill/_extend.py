"""``turbodill.extend``: the standard library's pure-Python pickler
(``pickle._Pickler``, which ``pickle._dumps`` and subclasses of it use) made
to pickle what turbodill pickles by value, as ``dill.extend`` does with
dill's savers.

For each type turbodill reaches beyond the stdlib, the pickler's
``dispatch`` gets a saver that writes functions and classes by name as the
stdlib does when it can find them, and otherwise
``pickle.loads(<turbodill's payload for the object>)``: plain
``pickle.loads`` reads it, and the object is memoized in the outer pickle.
"""

import pickle
import types
from typing import Any

from . import _reducers

# type -> the saver pickle._Pickler.dispatch had before extend(), or None
# (the stdlib's, or another library's: dill extends it on import).
_replaced: dict[type, Any] = {}

# The stdlib's own savers by name, whatever the dispatch holds now.
_BY_NAME = {
    types.FunctionType: pickle._Pickler.save_global,  # type: ignore[attr-defined]
    type: pickle._Pickler.save_type,  # type: ignore[attr-defined]
}


def _by_value_types():
    return [
        types.FunctionType,
        types.CodeType,
        types.CellType,
        types.ModuleType,
        type,
        staticmethod,
        classmethod,
        property,
        *_reducers._REDUCERS,
    ]


def _save_with_turbodill(pickler, obj):
    from . import dumps

    by_name = _BY_NAME.get(type(obj))
    if by_name is not None:
        try:
            return by_name(pickler, obj)
        except pickle.PicklingError:  # not found by name: by value below
            pass
    pickler.save_reduce(pickle.loads, (dumps(obj, protocol=pickler.proto),), obj=obj)


def extend(use_dill=True):
    """Add (``use_dill=True``) or remove turbodill's types from
    ``pickle._Pickler.dispatch`` (dill's ``extend``; turbodill does not call
    it on import)."""
    dispatch = pickle._Pickler.dispatch
    if use_dill:
        for cls in _by_value_types():
            if dispatch.get(cls) is not _save_with_turbodill:
                _replaced[cls] = dispatch.get(cls)
                dispatch[cls] = _save_with_turbodill
        return
    for cls, previous in list(_replaced.items()):
        if dispatch.get(cls) is _save_with_turbodill:
            if previous is None:
                del dispatch[cls]
            else:
                dispatch[cls] = previous
        del _replaced[cls]
