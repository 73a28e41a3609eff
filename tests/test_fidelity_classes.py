"""By-value fidelity for classes, typing constructs, instances and files
(issue 9, defects 5, 6, 7, 8, 10 and 11), against cloudpickle and dill.

Each case is one piece of source, placed where users write it: at the top of
a `__main__` script, inside a function of an importable module, and at the
top of a module registered by value (which the loading interpreter cannot
import). A dumping interpreter pickles the case's objects at protocols 2 to 5
with turbodill, cloudpickle and dill, and checks the live identities there
(`loads(dumps(C)) is C`); a fresh interpreter loads every payload with plain
`pickle.loads` and checks behaviour, identity within a payload and across
payloads. turbodill must pass every case in every placement; the others'
results are computed the same way, so a case they pass and turbodill fails
shows up as a failure of turbodill, never hidden.
"""

import io
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import pytest

import turbodill

PROTOCOLS = (2, 3, 4, 5)
LIBRARIES = ("turbodill", "cloudpickle", "dill")
PLACEMENTS = ("main", "function", "by_value")
CASES_DIR = os.path.join(os.path.dirname(__file__), "fidelity_cases")


def _read(path):
    with open(path) as f:
        return f.read()


# name -> (definitions, payloads, live check, fresh check). `payloads` is a
# list of expressions, each dumped on its own; the live check sees the
# definitions and `loaded` (each payload loaded in the dumping process); the
# fresh check sees only `objs` (each payload loaded in a fresh interpreter).
CASES = {
    # 5: a TypeVar made where its name does not lead back to it, Generic[T]
    # classes and annotations using it, one object across payloads.
    "typevar_generic": (
        """
        import typing
        T = typing.TypeVar("T")
        class Pair(typing.Generic[T]):
            def __init__(self, first: T, second: T):
                self.items = (first, second)
            def swapped(self) -> "Pair[T]":
                return Pair(self.items[1], self.items[0])
        """,
        ["[T, Pair, Pair(3, 4)]", "[Pair[T], T]"],
        "assert loaded[0][0] is T and loaded[0][1] is Pair and loaded[1][1] is T",
        """
        (T1, P, p), (alias, T2) = objs
        assert T1 is T2 and alias.__origin__ is P and alias.__args__ == (T1,)
        assert P.__parameters__ == (T1,) and isinstance(p, P) and p.swapped().items == (4, 3)
        assert typing.get_type_hints(P.__init__)["first"] is T1
        """,
    ),
    "paramspec_and_bound_typevar": (
        """
        import typing
        P = typing.ParamSpec("P")
        R = typing.TypeVar("R", bound=int)
        def logged(f: typing.Callable[P, R]) -> typing.Callable[P, R]:
            return f
        """,
        ["[P, R, logged]", "[logged, R]"],
        "assert loaded[0][0] is P and loaded[0][1] is R and loaded[1][1] is R",
        """
        (P1, R1, f1), (f2, R2) = objs
        assert R1 is R2 and R1.__bound__ is int and type(P1).__name__ == "ParamSpec"
        assert f1.__annotations__["f"].__args__ == (P1, R1) and f1(len) is len
        """,
    ),
    "typevartuple": (
        """
        import typing
        Ts = typing.TypeVarTuple("Ts")
        class Row(typing.Generic[typing.Unpack[Ts]]):
            pass
        """,
        ["[Ts, Row]", "[Row, Ts]"],
        "assert loaded[0][0] is Ts and loaded[1][0] is Row",
        """
        (Ts1, Row1), (Row2, Ts2) = objs
        assert Ts1 is Ts2 and Row1 is Row2 and Row1.__parameters__ == (Ts1,)
        assert type(Ts1).__name__ == "TypeVarTuple" and Ts1.__name__ == "Ts"
        """,
    ),
    # 6: abc's deprecated abstract descriptors (subclasses of classmethod,
    # staticmethod and property) in a class pickled by value.
    "abc_abstract_descriptors": (
        """
        import abc
        class Base(abc.ABC):
            @abc.abstractclassmethod
            def make(cls): ...
            @abc.abstractstaticmethod
            def helper(): ...
            @abc.abstractproperty
            def size(self): ...
        class Impl(Base):
            @classmethod
            def make(cls):
                return cls()
            @staticmethod
            def helper():
                return "h"
            @property
            def size(self):
                return 3
        """,
        ["[Base, Impl]"],
        "assert loaded[0] == [Base, Impl]",
        """
        import abc
        ((Base, Impl),) = objs
        assert Base.__abstractmethods__ == {"make", "helper", "size"}
        assert type(vars(Base)["make"]) is abc.abstractclassmethod
        assert type(vars(Base)["helper"]) is abc.abstractstaticmethod
        assert type(vars(Base)["size"]) is abc.abstractproperty
        try:
            Base()
        except TypeError:
            pass
        else:
            raise AssertionError("an abstract class was instantiated")
        assert Impl.make().size == 3 and Impl.helper() == "h" and issubclass(Impl, Base)
        """,
    ),
    # 7: members and instances keep the class's identity at every protocol,
    # within a payload and across two.
    "str_enum_identity": (
        """
        import enum
        class Color(str, enum.Enum):
            RED = "r"
            GREEN = "g"
        """,
        ["[Color.GREEN, Color]", "[Color, Color.RED]"],
        "assert loaded[0][0] is Color.GREEN and loaded[0][1] is Color and loaded[1][1] is Color.RED",
        """
        (g, C), (C2, r) = objs
        assert C is C2 and g is C.GREEN and r is C.RED and g == "g" and isinstance(g, str)
        assert list(C) == [C.RED, C.GREEN] and C("r") is r
        """,
    ),
    # 7 and 8: a NamedTuple class (the one from __main__ used to fail to
    # load: "Cannot overwrite NamedTuple attribute __slots__").
    "namedtuple_identity": (
        """
        import typing
        class Point(typing.NamedTuple):
            x: int
            y: int = 2
            def norm1(self):
                return abs(self.x) + abs(self.y)
        """,
        ["[Point(1), Point]", "[Point, Point(3, -4)]"],
        "assert loaded[0][1] is Point and isinstance(loaded[0][0], Point) and isinstance(loaded[1][1], Point)",
        """
        (p, P), (P2, q) = objs
        assert P is P2 and isinstance(p, P) and isinstance(q, P) and p == (1, 2)
        assert q.norm1() == 7 and P._fields == ("x", "y") and P._field_defaults == {"y": 2}
        assert P(5).y == 2 and p._replace(x=9) == (9, 2) and p._asdict() == {"x": 1, "y": 2}
        assert typing.get_type_hints(P) == {"x": int, "y": int}
        """,
    ),
    # A class its sender changed between two payloads: the later payload's
    # definition wins in the loader (as cloudpickle's class tracking does);
    # the sender's own class is never changed by loading an older payload.
    "class_changed_between_payloads": (
        """
        import copy
        class Counter:
            def step(self):
                return 1
        def _first(self):
            return 1
        def _second(self):
            return 2
        class AsFirst:
            def __reduce__(self):
                Counter.step = _first
                return (copy.copy, (Counter(),))
        class AsChanged:
            def __reduce__(self):
                Counter.step = _second
                return (copy.copy, (Counter(),))
        """,
        ["AsFirst()", "AsChanged()"],
        "assert type(loaded[0]) is Counter and type(loaded[1]) is Counter and Counter.step is _second",
        """
        first, changed = objs
        assert type(first) is type(changed) and changed.step() == 2 and first.step() == 2
        """,
    ),
    # 10: a class delegating attribute access: loading must not consult
    # __getattr__ on the half-built instance (it would recurse).
    "delegating_getattr": (
        _read(os.path.join(CASES_DIR, "classes_delegating.py")) + "\nns = Namespaced(Client())\n",
        ["ns", "[ns, ns.client]"],
        "assert loaded[0].ping() == 'pong' and loaded[1][0].client is loaded[1][1]",
        """
        n, (n2, c2) = objs
        assert n.ping() == "pong" and n.calls == 1 and n2.client is c2 and n2.ping() == "pong"
        assert c2.calls == 1 and type(n2).__name__ == "Namespaced"
        """,
    ),
}

DUMP_SCRIPT = """
import pickle, sys
import {lib}
{placement}
results = {{}}
for proto in {protocols}:
    try:
        payloads = [{lib}.dumps(obj, protocol=proto) for obj in [{payloads}]]
        loaded = [pickle.loads(p) for p in payloads]
{live}
        results[proto] = payloads
    except BaseException as exc:
        results[proto] = f"{{type(exc).__name__}}: {{exc}}"[:300]
sys.stdout.buffer.write(pickle.dumps(results))
"""

LOAD_SCRIPT = """
import pickle, sys, typing
results = pickle.loads(sys.stdin.buffer.read())
verdicts = {{}}
for proto, payloads in results.items():
    if isinstance(payloads, str):
        verdicts[proto] = "dump: " + payloads
        continue
    try:
        objs = [pickle.loads(p) for p in payloads]
{fresh}
        verdicts[proto] = "ok"
    except BaseException as exc:
        verdicts[proto] = f"load: {{type(exc).__name__}}: {{exc}}"[:300]
print(repr(verdicts))
"""


def _indent(code, spaces):
    return textwrap.indent(textwrap.dedent(code).strip(), " " * spaces)


def _place(lib, placement, name, definitions, tmp):
    """The source that makes the case's names global in the dumping script,
    and the PYTHONPATH entries the loading interpreter gets."""
    source = textwrap.dedent(definitions).strip()
    if placement == "main":
        return source, []
    module = f"fidelity_{placement}_{name}"
    if placement == "function":
        body = f"def make():\n{_indent(source, 4)}\n    return dict(locals())\n"
        with open(os.path.join(tmp, f"{module}.py"), "w") as f:
            f.write(body)
        # An importable module: the loading side has it, as a worker would.
        return f"from {module} import make\nglobals().update(make())", [tmp]
    with open(os.path.join(tmp, f"{module}.py"), "w") as f:
        f.write(source + "\n")
    register = {
        "turbodill": f"turbodill.register_pickle_by_value({module})",
        "cloudpickle": f"cloudpickle.register_pickle_by_value({module})",
        "dill": "pass  # dill has no by-value registry",
    }[lib]
    names = f"{{k: v for k, v in vars({module}).items() if not k.startswith('__')}}"
    return f"import {module}\n{register}\nglobals().update({names})", []


def run_case(lib, placement, name, tmp):
    definitions, payloads, live, fresh = CASES[name]
    placement_source, load_path = _place(lib, placement, name, definitions, tmp)
    script = DUMP_SCRIPT.format(
        lib=lib,
        placement=placement_source,
        protocols=PROTOCOLS,
        payloads=", ".join(payloads),
        live=_indent(live, 8),
    )
    env = dict(os.environ, PYTHONPATH=tmp)
    dumped = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, cwd=tmp, timeout=120)
    assert dumped.returncode == 0, dumped.stderr.decode()[-2000:]
    load_env = dict(os.environ, PYTHONPATH=os.pathsep.join(load_path))
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT.format(fresh=_indent(fresh, 8))],
        input=dumped.stdout,
        capture_output=True,
        env=load_env,
        cwd=os.path.dirname(tmp),
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr.decode()[-2000:]
    return eval(loaded.stdout.decode())


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_case_at_least_as_well_as_cloudpickle_and_dill(name, placement, tmp_path):
    verdicts = {}
    for lib in LIBRARIES:
        (tmp_path / lib).mkdir()
        verdicts[lib] = run_case(lib, placement, name, str(tmp_path / lib))
    ours = verdicts["turbodill"]
    for lib in ("cloudpickle", "dill"):
        for proto, verdict in verdicts[lib].items():
            assert verdict != "ok" or ours[proto] == "ok", (lib, proto, ours[proto])
    assert all(v == "ok" for v in ours.values()), ours


# ---- cases that need a placement of their own ---------------------------------

sys.path.insert(0, CASES_DIR)


def load_fresh(payload, check, *, path=()):
    """Load `payload` with plain `pickle.loads` in a fresh interpreter as
    `obj` and run `check`; return its stdout."""
    code = f"import pickle, sys\nobj = pickle.loads(sys.stdin.buffer.read())\n{textwrap.dedent(check)}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout.decode()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_twins_from_one_factory_each_load_back_as_themselves(proto):
    # 7: two calls of a factory make two classes (and TypeVars) with one
    # definition; each must come back as itself, not as the first one.
    import classes_factory

    first, second = classes_factory.make(), classes_factory.make()
    for made in (first, second):
        T, Color, Point, Box = made
        loaded = pickle.loads(turbodill.dumps([Color.GREEN, Color, Point(1), Point, T, Box], protocol=proto))
        assert loaded[0] is Color.GREEN and loaded[1] is Color and loaded[3] is Point
        assert isinstance(loaded[2], Point) and loaded[4] is T and loaded[5] is Box
    payloads = [turbodill.dumps(list(made), protocol=proto) for made in (first, second, first)]
    out = load_fresh(
        pickle.dumps(payloads),
        """
        a, b, a2 = (pickle.loads(p) for p in obj)
        assert all(x is y for x, y in zip(a, a2)), "one class loads as one class"
        assert not any(x is y for x, y in zip(a, b)), "twins stay two"
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_main_module_holding_a_namedtuple_loads_in_a_fresh_interpreter():
    # 8: the module object itself, by value, with its NamedTuple class.
    script = """
    import sys, typing, turbodill
    class Point(typing.NamedTuple):
        x: int
        y: int = 2
    origin = Point(0)
    sys.stdout.buffer.write(turbodill.dumps(sys.modules["__main__"]))
    """
    dumped = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr.decode()
    out = load_fresh(
        dumped.stdout,
        """
        assert isinstance(obj.origin, obj.Point) and obj.Point(1).y == 2 and obj.origin._fields == ("x", "y")
        print("ok")
        """,
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize("proto", range(6))
def test_importable_delegating_class_loads_without_recursing(proto):
    # pickle, cloudpickle and dill all write the stdlib's bytes here, whose load recurses (RecursionError).
    from classes_delegating import Client, Namespaced

    ns = Namespaced(Client())
    with pytest.raises(RecursionError):
        pickle.loads(pickle.dumps(ns, protocol=proto))
    out = load_fresh(
        turbodill.dumps([ns, ns], protocol=proto),
        """
        a, b = obj
        assert a is b and a.ping() == "pong" and a.calls == 1
        print("ok")
        """,
        path=[CASES_DIR],
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize("proto", range(6))
def test_delegating_class_whose_blank_instance_is_fine_keeps_the_stdlib_bytes(proto):
    from classes_delegating import Client, Guarded

    guarded = Guarded(Client())
    assert turbodill.dumps(guarded, protocol=proto) == pickle.dumps(guarded, protocol=proto)
    assert pickle.loads(turbodill.dumps(guarded, protocol=proto)).ping() == "pong"


FILE_MODES = ["r", "r+", "w", "w+", "a", "a+", "x", "rb", "rb+", "wb", "ab", "ab+", "xb"]


@pytest.mark.parametrize("mode", FILE_MODES)
def test_open_file_comes_back_with_its_mode_type_and_position(mode, tmp_path):
    # 11: as dill (fmode HANDLE_FMODE) gives them back, but never truncated.
    import dill

    path = tmp_path / "data.txt"
    if "x" not in mode:
        path.write_text("hello\n")
    with open(path, mode) as f:
        if "r" in mode:
            f.read(2)
        payload = turbodill.dumps(f)
        expected = (type(f).__name__, f.mode, f.tell())
        ours = pickle.loads(payload)
        try:
            theirs = (
                dill.loads(dill.dumps(f)) if "x" not in mode else None
            )  # dill reopens 'x' files exclusively: FileExistsError
        finally:
            if "w" in mode:
                path.write_text("")  # dill's reload truncated it
    with ours:
        assert (type(ours).__name__, ours.mode, ours.tell()) == expected
    if theirs is not None:
        with theirs:
            assert (type(theirs).__name__, theirs.mode) == expected[:2]
    path.write_text("kept\n")
    out = load_fresh(
        payload,
        f"""
        assert (type(obj).__name__, obj.mode) == {expected[:2]!r}, (type(obj), obj.mode)
        if obj.writable():
            obj.write({'b"more"' if "b" in mode else '"more"'})
        obj.close()
        print(open({str(path)!r}).read())
        """,
    )
    if "a" in mode:
        assert out == "kept\nmore\n"
    elif "w" in mode or "x" in mode or "+" in mode:
        assert out.startswith("more") or out.startswith("kemore"), out  # written at the saved position, never truncated
    else:
        assert out == "kept\n\n"


def test_unbuffered_file_comes_back_unbuffered(tmp_path):
    with open(tmp_path / "raw.bin", "wb", buffering=0) as f:
        f.write(b"abc")
        again = pickle.loads(turbodill.dumps(f))
    with again:
        assert type(again) is io.FileIO and again.mode == "wb" and again.tell() == 3


# ---- 15: dill's API, for code that does `import turbodill as dill` ------------

import dill  # noqa: E402 (the reference for its own API; a test extra)
import dill.detect  # noqa: E402

import turbodill.detect  # noqa: E402

SCALE = 5


def helper(x):
    return x * SCALE


def outer(a):
    k = 2

    def inner(b):
        return helper(b) + k + round(b)

    return inner


class WithMethod:
    def method(self):
        return helper(1)


def _as_comparable(value):
    if isinstance(value, (list, type({}.keys()))):
        return sorted(map(repr, value))
    return value


@pytest.mark.parametrize(
    "name",
    ["code", "nestedcode", "nestedglobals", "referredglobals", "varnames", "outermost", "referrednested", "freevars"],
)
def test_detect_inspection_functions_answer_as_dill(name):
    inner = outer(1)
    for obj in (outer, inner, helper, WithMethod().method, outer.__code__, len):
        theirs = getattr(dill.detect, name)(obj)
        ours = getattr(turbodill.detect, name)(obj)
        assert _as_comparable(ours) == _as_comparable(theirs), (name, obj)


def test_detect_globalvars_answers_as_dill():
    inner = outer(1)
    for recurse in (True, False):
        for builtin in (True, False):
            for obj in (outer, inner, helper, WithMethod().method, outer.__code__):
                assert turbodill.detect.globalvars(obj, recurse, builtin) == dill.detect.globalvars(
                    obj, recurse, builtin
                )
    assert turbodill.detect.globalvars(inner) == {"helper": helper, "SCALE": SCALE}


def test_pointers_find_objects_as_dill():
    import weakref

    import turbodill.pointers

    assert turbodill.detect.at is turbodill.pointers.at
    target = WithMethod()
    proxy = weakref.proxy(target)
    assert turbodill.detect.reference(proxy) == dill.detect.reference(proxy) == id(target)
    assert turbodill.detect.reference(target) == dill.detect.reference(target) == id(target)
    assert turbodill.detect.at(id(target)) is dill.detect.at(id(target)) is target
    with pytest.raises(ReferenceError):
        turbodill.detect.at(1)
    numbers = [4, 5, 6, 7]
    iterator = iter(numbers)
    assert turbodill.detect.parent(iterator, list) is numbers
    assert turbodill.detect.parents(iterator, list) == dill.detect.parents(iterator, list) == [iterator, numbers]
    assert turbodill.detect.parent(iterator, dict) is dill.detect.parent(iterator, dict) is None
    assert turbodill.detect.children(numbers, type(iterator)) == dill.detect.children(numbers, type(iterator))
    assert turbodill.detect.children(numbers, type(iterator))[0] is iterator


def test_warnings_have_dills_bases():
    for name, bases in [
        ("PickleWarning", (Warning, pickle.PickleError)),
        ("PicklingWarning", (turbodill.PickleWarning, pickle.PicklingError)),
        ("UnpicklingWarning", (turbodill.PickleWarning, pickle.UnpicklingError)),
    ]:
        assert getattr(turbodill, name).__bases__ == bases
        assert [b.__name__ for b in getattr(dill, name).__mro__] == [
            b.__name__ for b in getattr(turbodill, name).__mro__
        ]


def test_load_types_fills_objects_and_objtypes_by_dills_names():
    try:
        turbodill.load_types(pickleable=True, unpickleable=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # itertools' pickling, on 3.12+
            for sample in turbodill.objects.values():
                turbodill.dumps(sample)
        assert turbodill.objtypes.ListType is list and turbodill.types is turbodill.objtypes
        turbodill.load_types(pickleable=True, unpickleable=True)
        assert turbodill.objtypes.FrameType is type(sys._getframe())
        dill.load_types(pickleable=True, unpickleable=True)
        shared = set(turbodill.objects) & set(dill.objects)
        assert len(shared) >= 100
        # (ClassInstanceType's sample is an instance of a class of each library's own)
        mismatched = [n for n in shared if type(turbodill.objects[n]) is not type(dill.objects[n])]
        assert mismatched == ["ClassInstanceType"]
        for name in shared - {"ClassInstanceType"}:
            assert getattr(turbodill.objtypes, name) is getattr(dill.types, name)
        turbodill.load_types(pickleable=False, unpickleable=False)
        assert turbodill.objects == {} and not hasattr(turbodill.objtypes, "ListType")
    finally:
        turbodill.objects.clear()


def test_extend_teaches_the_pure_python_pickler_and_reverts():
    square = lambda x: x * x  # noqa: E731
    before = dict(pickle._Pickler.dispatch)
    turbodill.extend()
    try:
        payload = pickle._dumps({"f": square, "again": square, "lock": __import__("threading").Lock()})
        out = load_fresh(
            payload, 'assert obj["f"] is obj["again"] and obj["f"](4) == 16 and not obj["lock"].locked(); print("ok")'
        )
        assert out.strip() == "ok"
        assert pickle.loads(pickle._dumps(helper)) is helper  # by name where pickle finds it
    finally:
        turbodill.extend(False)
    assert dict(pickle._Pickler.dispatch) == before


def test_trace_reports_each_object_its_path_and_reduction(capsys):
    import threading

    class Holder:
        pass

    holder = Holder()
    holder.lock = threading.Lock()
    holder.f = lambda: 1
    buffer = io.StringIO()
    with turbodill.detect.trace(buffer) as log:
        log("> D = %r", "holder")
        turbodill.dumps({"h": holder, "n": [1, (len,)], "again": Holder()})
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "> D = 'holder'"
    # (written natively where instance.rs has its fast path, else by copyreg.__newobj__)
    holder_lines = [line for line in lines if line.startswith("obj['h']  ") and ".Holder <" in line]
    assert len(holder_lines) == 1 and ("instance" in holder_lines[0] or "__newobj__" in holder_lines[0])
    # A later instance of the class, which goes straight to the path the first took, is traced too.
    [again] = [line for line in lines if line.startswith("obj['again']  ")]
    assert again.split("  ", 2)[2] == holder_lines[0].split("  ", 2)[2], (again, holder_lines)
    assert any(line.startswith("obj['h']  type") and "class by value" in line for line in lines)
    assert any(line.startswith("obj['h'].lock  lock") and "make_lock" in line for line in lines)
    assert any(line.startswith("obj['h'].f  function") and "function by value" in line for line in lines)
    assert any(line.startswith("obj['n'][1][0]  builtin_function_or_method") and "global len" in line for line in lines)
    turbodill.dumps([len])
    assert buffer.getvalue().splitlines() == lines, "the trace ends with its block"
    turbodill.detect.trace(True)
    try:
        turbodill.dumps([len])
    finally:
        turbodill.detect.trace(False)
    turbodill.dumps([len])
    assert capsys.readouterr().err.count("global len") == 1


def test_signatures_are_dills():
    import inspect

    def parameters(func):
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert set(dill.detect.__all__) <= set(turbodill.detect.__all__)
    for name in dill.detect.__all__:
        assert parameters(getattr(turbodill.detect, name)) == parameters(getattr(dill.detect, name)), name
    for name in ("extend", "load_types"):
        assert parameters(getattr(turbodill, name)) == parameters(getattr(dill, name)), name
