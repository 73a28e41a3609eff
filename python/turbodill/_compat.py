"""Loading dill and cloudpickle payloads where neither is installed:
``loads(data, compat=True)`` and ``Unpickler(file, compat=True)``.

Their payloads name load-side helpers (``dill._dill._create_function``,
``cloudpickle.cloudpickle._make_skeleton_class``...). ``find_class`` below
resolves those names to the reconstructors of this module, which rebuild the
same objects from the same arguments, written for turbodill from what each
helper is documented and observed to produce (dill 0.3.6 to 0.4.1,
cloudpickle 2.x and 3.x). Everything else resolves as in the stdlib. Code
objects are bytecode: a payload loads only on the Python minor version that
wrote it, as with dill and cloudpickle themselves.
"""

import builtins
import collections
import io
import pickle
import sys
import types
import typing
import weakref

# ---- shared ------------------------------------------------------------------


def _empty_cell():
    if False:
        value = None  # noqa: F841 (makes `value` a cell variable)
    return (lambda: value).__closure__[0]  # noqa: F821


def _cell(value):
    cell = _empty_cell()
    cell.cell_contents = value
    return cell


def _set_class_state(cls, state):
    registry = None
    for name, value in state.items():
        if name == "_abc_impl":  # cloudpickle: the ABC's registered subclasses
            registry = value
        else:
            setattr(cls, name, value)
    for subclass in registry or ():
        cls.register(subclass)
    return cls


# ---- dill ----------------------------------------------------------------------


class _DillSentinel:
    """Stands for dill's ``_CELL_EMPTY``: a cell made from it stays empty."""

    def __repr__(self):
        return "turbodill._compat.DILL_CELL_EMPTY"


DILL_CELL_EMPTY = _DillSentinel()


def _dill_load_type(name):
    found = getattr(types, name, None)
    if isinstance(found, type):
        return found
    found = getattr(builtins, name, None)
    if isinstance(found, type):
        return found
    make = _DILL_TYPES.get(name)
    if make is None:
        raise pickle.UnpicklingError(f"turbodill compat: unknown dill type name {name!r}")
    return make()


def _odict_view(view):
    return lambda: type(getattr(collections.OrderedDict(), view)())


def _io_type(module, name):
    return lambda: getattr(__import__(module), name)


_DILL_TYPES = {
    "PartialType": _io_type("functools", "partial"),
    "SuperType": lambda: super,
    "ItemGetterType": _io_type("operator", "itemgetter"),
    "AttrGetterType": _io_type("operator", "attrgetter"),
    "DictKeysType": lambda: type({}.keys()),
    "DictValuesType": lambda: type({}.values()),
    "DictItemsType": lambda: type({}.items()),
    "OdictKeysType": _odict_view("keys"),
    "OdictValuesType": _odict_view("values"),
    "OdictItemsType": _odict_view("items"),
    "FileType": lambda: io.FileIO,
    "BufferedRandomType": lambda: io.BufferedRandom,
    "BufferedReaderType": lambda: io.BufferedReader,
    "BufferedWriterType": lambda: io.BufferedWriter,
    "TextWrapperType": lambda: io.TextIOWrapper,
    "PyBufferedRandomType": _io_type("_pyio", "BufferedRandom"),
    "PyBufferedReaderType": _io_type("_pyio", "BufferedReader"),
    "PyBufferedWriterType": _io_type("_pyio", "BufferedWriter"),
    "PyTextWrapperType": _io_type("_pyio", "TextIOWrapper"),
    "ExitType": _io_type("_sitebuiltins", "Quitter"),
    "GenericAliasIteratorType": lambda: type(iter(list[int])),
}


def _dill_create_type(typeobj, *args):
    return typeobj(*args)


def _dill_create_function(fcode, fglobals, fname=None, fdefaults=None, fclosure=None, fdict=None, fkwdefaults=None):
    func = types.FunctionType(fcode, fglobals or {}, fname, fdefaults, fclosure)
    if fdict is not None:
        func.__dict__.update(fdict)
    if fkwdefaults is not None:
        func.__kwdefaults__ = fkwdefaults
    func.__globals__.setdefault("__builtins__", builtins.__dict__)
    return func


# dill stores code objects as the constructor's arguments (3.10+: preceded by
# co_lnotab); since 3.11 the constructor takes 18, bytes fields may be str.
_CODE_BYTES_FIELDS = (6, 14, 15)


def _dill_create_code(*args):
    if not isinstance(args[0], int):
        args = args[1:]
    if len(args) != 18 or sys.version_info < (3, 11):
        raise pickle.UnpicklingError(
            f"turbodill compat: a dill code object with {len(args)} fields was written by another "
            f"Python version than {sys.version_info.major}.{sys.version_info.minor}"
        )
    args = list(args)
    for i in _CODE_BYTES_FIELDS:
        if isinstance(args[i], str):
            args[i] = args[i].encode("latin-1")
    return types.CodeType(*args)


def _dill_create_cell(contents=None):
    return _empty_cell() if contents is DILL_CELL_EMPTY else _cell(contents)


def _dill_create_ftype(ftypeobj, func, args, kwds):
    return ftypeobj(func, *(args or ()), **(kwds or {}))


def _dill_create_typing_tuple(argz, *args):
    if not argz:
        return tuple[()].copy_with(())
    if argz == ((),):
        return tuple[()]
    return tuple[argz]


def _dill_create_lock(locked, *args):
    import threading

    lock = threading.Lock()
    if locked:
        lock.acquire()
    return lock


def _dill_create_rlock(count, owner, *args):
    import threading

    rlock = threading.RLock()
    if owner is not None:
        for _ in range(count):
            rlock.acquire()
    return rlock


def _dill_create_filehandle(name, mode, position, closed, open, strictio, fmode, fdata):
    # dill's FILE_FMODE (2) would write the pickled contents back to disk:
    # turbodill never writes when loading, so it reopens the file as dill's
    # CONTENTS_FMODE (1) does.
    from ._reconstruct import open_file

    return open_file(name, mode, position, closed, "b" not in mode, None, 1 if fmode else 0)


def _dill_create_stringio(value, position, closed):
    f = io.StringIO(value)
    if closed:
        f.close()
    else:
        f.seek(position)
    return f


def _dill_create_weakref(obj, *args):
    return weakref.ref(obj if obj is not None else collections.UserDict(), *args)


def _dill_create_weakproxy(obj, callable=False, *args):
    if obj is None:
        obj = (lambda x: x) if callable else collections.UserDict()
    return weakref.proxy(obj, *args)


def _dill_eval_repr(repr_str):
    return eval(repr_str)


def _dill_create_array(f, args, state, npdict=None):
    array = f(*args)
    array.__setstate__(state)
    if npdict is not None:
        array.__dict__.update(npdict)
    return array


def _dill_create_dtypemeta(scalar_type):
    import numpy

    return numpy.dtype if scalar_type is None else type(numpy.dtype(scalar_type))


def _dill_create_namedtuple(name, fieldnames, modulename, defaults=None):
    existing = getattr(sys.modules.get(modulename), name, None)
    if isinstance(existing, type):
        return existing
    return collections.namedtuple(name, fieldnames, defaults=defaults, module=modulename)


def _dill_getattr(objclass, name, repr_str):
    try:
        return vars(objclass)[name]
    except (TypeError, KeyError):
        return getattr(objclass, name)


def _dill_get_attr(obj, name):
    return getattr(obj, name, None) or getattr(builtins, name)


def _dill_import_module(import_name, safe=False):
    standin = _STANDIN_MODULES.get(import_name)
    if standin is not None:
        return standin
    try:
        if import_name.startswith("__runtime__."):
            return sys.modules[import_name]
        module, _, attr = import_name.rpartition(".")
        if module:
            found = getattr(__import__(module, None, None, [attr]), attr)
            if isinstance(found, (types.ModuleType, type)):
                return found
            return __import__(import_name, None, None, [attr])
        return __import__(import_name)
    except (ImportError, AttributeError, KeyError):
        if safe:
            return None
        raise


def _dill_setitems(dest, source):
    for k, v in source.items():
        dest[k] = v


DILL = {
    "_load_type": _dill_load_type,
    "_create_type": _dill_create_type,
    "_create_function": _dill_create_function,
    "_create_code": _dill_create_code,
    "_create_cell": _dill_create_cell,
    "_create_ftype": _dill_create_ftype,
    "_create_typing_tuple": _dill_create_typing_tuple,
    "_create_lock": _dill_create_lock,
    "_create_rlock": _dill_create_rlock,
    "_create_filehandle": _dill_create_filehandle,
    "_create_stringi": _dill_create_stringio,
    "_create_stringo": _dill_create_stringio,
    "_create_weakref": _dill_create_weakref,
    "_create_weakproxy": _dill_create_weakproxy,
    "_eval_repr": _dill_eval_repr,
    "_create_array": _dill_create_array,
    "_create_dtypemeta": _dill_create_dtypemeta,
    "_create_namedtuple": _dill_create_namedtuple,
    "_getattr": _dill_getattr,
    "_get_attr": _dill_get_attr,
    "_import_module": _dill_import_module,
    "_setitems": _dill_setitems,
    "_CELL_EMPTY": DILL_CELL_EMPTY,
    "_CELL_REF": None,
}


# ---- cloudpickle -------------------------------------------------------------

# Classes (and TypeVars) by the tracker id cloudpickle gave them: every
# payload with the same id loads the same object, as under cloudpickle.
_tracked = weakref.WeakValueDictionary()


def _track(tracker_id, obj):
    if tracker_id is None:
        return obj
    return _tracked.setdefault(tracker_id, obj)


class _CloudpickleEmptyCell:
    """Stands for cloudpickle's ``_empty_cell_value``."""


def _cp_builtin_type(name):
    return type if name == "ClassType" else getattr(types, name)


def _cp_make_function(code, globals, name, argdefs, closure):
    globals["__builtins__"] = builtins.__dict__
    return types.FunctionType(code, globals, name, argdefs, closure)


def _cp_make_skel_func(code, cell_count, base_globals=None):
    if not isinstance(base_globals, dict):
        base_globals = {}
    base_globals["__builtins__"] = builtins.__dict__
    closure = tuple(_empty_cell() for _ in range(cell_count)) if cell_count >= 0 else None
    return types.FunctionType(code, base_globals, None, None, closure)


def _cp_make_cell(value=_CloudpickleEmptyCell):
    return _empty_cell() if value is _CloudpickleEmptyCell else _cell(value)


def _cp_get_cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _CloudpickleEmptyCell


def _cp_function_setstate(func, state):
    state, slotstate = state
    func.__dict__.update(state)
    func.__globals__.update(slotstate.pop("__globals__"))
    func.__globals__["__builtins__"] = builtins.__dict__
    closure = slotstate.pop("__closure__")
    slotstate.pop("_cloudpickle_submodules", None)
    for target, source in zip(func.__closure__ or (), closure or ()):
        try:
            target.cell_contents = source.cell_contents
        except ValueError:
            pass
    for name, value in slotstate.items():
        setattr(func, name, value)
    return func


def _cp_make_skeleton_class(type_constructor, name, bases, type_kwargs, class_tracker_id, extra):
    cls = types.new_class(name, bases, {"metaclass": type_constructor}, lambda ns: ns.update(type_kwargs))
    return _track(class_tracker_id, cls)


def _cp_make_skeleton_enum(bases, name, qualname, members, module, class_tracker_id, extra):
    metaclass = type(bases[-1])
    classdict = metaclass.__prepare__(name, bases)
    for member, value in members.items():
        classdict[member] = value
    cls = metaclass.__new__(metaclass, name, bases, classdict)
    cls.__module__ = module
    cls.__qualname__ = qualname
    return _track(class_tracker_id, cls)


def _cp_class_setstate(cls, state):
    state, slotstate = state
    return _set_class_state(cls, state)


def _cp_rehydrate_skeleton_class(cls, class_dict):
    return _set_class_state(cls, class_dict)


def _cp_make_typevar(name, bound, constraints, covariant, contravariant, class_tracker_id):
    typevar = typing.TypeVar(name, *constraints, bound=bound, covariant=covariant, contravariant=contravariant)
    return _track(class_tracker_id, typevar)


def _cp_subimport(name):
    __import__(name)
    return sys.modules[name]


def _cp_dynamic_subimport(name, vars):
    module = types.ModuleType(name)
    module.__dict__.update(vars)
    module.__dict__["__builtins__"] = builtins.__dict__
    return module


def _cp_dataclass_field_type_sentinel(name):
    import dataclasses

    return getattr(dataclasses, name)


def _cp_make_dict_keys(obj, is_ordered=False):
    return (collections.OrderedDict if is_ordered else dict).fromkeys(obj).keys()


def _cp_make_dict_values(obj, is_ordered=False):
    return (collections.OrderedDict if is_ordered else dict)(enumerate(obj)).values()


def _cp_make_dict_items(obj, is_ordered=False):
    return (collections.OrderedDict(obj) if is_ordered else obj).items()


def _cp_parametrized_type_hint(origin, args):
    return origin[args]


def _cp_rebuild_tornado_coroutine(func):
    from tornado import gen

    return gen.coroutine(func)


CLOUDPICKLE = {
    "_builtin_type": _cp_builtin_type,
    "_make_function": _cp_make_function,
    "_make_skel_func": _cp_make_skel_func,
    "_make_cell": _cp_make_cell,
    "_make_empty_cell": _empty_cell,
    "_get_cell_contents": _cp_get_cell_contents,
    "_empty_cell_value": _CloudpickleEmptyCell,
    "_function_setstate": _cp_function_setstate,
    "_make_skeleton_class": _cp_make_skeleton_class,
    "_make_skeleton_enum": _cp_make_skeleton_enum,
    "_class_setstate": _cp_class_setstate,
    "_rehydrate_skeleton_class": _cp_rehydrate_skeleton_class,
    "_make_typevar": _cp_make_typevar,
    "subimport": _cp_subimport,
    "dynamic_subimport": _cp_dynamic_subimport,
    "_get_dataclass_field_type_sentinel": _cp_dataclass_field_type_sentinel,
    "_make_dict_keys": _cp_make_dict_keys,
    "_make_dict_values": _cp_make_dict_values,
    "_make_dict_items": _cp_make_dict_items,
    "_file_reconstructor": lambda retval: retval,
    "_create_parametrized_type_hint": _cp_parametrized_type_hint,
    "_rebuild_tornado_coroutine": _cp_rebuild_tornado_coroutine,
    "instance": lambda cls: cls(),
    "_gen_ellipsis": lambda: Ellipsis,
    "_gen_not_implemented": lambda: NotImplemented,
}

# ---- names ---------------------------------------------------------------------

_TABLES = {
    "dill._dill": DILL,
    "dill.dill": DILL,
    "dill._shims": DILL,
    "dill": DILL,
    "cloudpickle.cloudpickle": CLOUDPICKLE,
    "cloudpickle.cloudpickle_fast": CLOUDPICKLE,
    "cloudpickle": CLOUDPICKLE,
}


def _standin(name, table):
    # dill reaches some helpers as getattr(dill._dill module, name[, default]).
    module = types.ModuleType(name, f"turbodill's stand-in for {name} (compat loading)")
    module.__dict__.update(table)
    return module


_STANDIN_MODULES = {"dill._dill": _standin("dill._dill", DILL), "dill": None}
_STANDIN_MODULES["dill"] = _standin("dill", {"_dill": _STANDIN_MODULES["dill._dill"]})


def find_class(stdlib_find_class, module, name):
    """``find_class`` for compat loading: dill's and cloudpickle's helpers by
    this module's reconstructors; dill's ``__builtin__.__main__`` (a
    function's globals when dill pickled it without ``recurse``) is this
    process's ``__main__`` namespace, as under dill."""
    table = _TABLES.get(module)
    if table is not None:
        if name in table:
            return table[name]
        if module == "dill" and name == "_dill":
            return _STANDIN_MODULES["dill._dill"]
        raise pickle.UnpicklingError(f"turbodill compat does not know {module}.{name}")
    if module == "__builtin__":
        if name == "__main__":
            return sys.modules["__main__"].__dict__
        if name == "NoneType":
            return type(None)
    return stdlib_find_class(module, name)
