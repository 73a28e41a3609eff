"""By-value functions, methods and their globals, as real code defines them
(issue 9). Each case is defined in three places: at the top of a `__main__`
script, inside a function of an importable module, and in a module
registered with `register_pickle_by_value`. It is pickled with turbodill,
cloudpickle and dill, and each payload is loaded in a fresh interpreter with
plain `pickle.loads` and checked by behaviour. turbodill must pass, and so
never do worse than either peer."""

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

LIBS = ("turbodill", "cloudpickle", "dill")
PLACEMENTS = ("main", "local", "registered")
CASES_DIR = os.path.join(os.path.dirname(__file__), "fidelity_cases")

# Dumps the object with each library and writes {lib: payload or error}.
# dill gets recurse=True: its default writes `__main__` globals as a
# reference to the loader's `__main__`, which plain `pickle.loads` cannot read.
DUMP_ALL = """
import pickle, sys
import cloudpickle, dill, turbodill
{setup}
def dump(lib):
    if lib == "dill":
        return dill.dumps(obj, recurse=True)
    return sys.modules[lib].dumps(obj)
payloads = {{}}
for lib in {libs!r}:
    try:
        # Sent twice: two dumps, which the worker loads one after the other.
        payloads[lib] = pickle.dumps([dump(lib), dump(lib)]) if {sent_twice} else dump(lib)
    except Exception as exc:
        payloads[lib] = f"dumps failed: {{type(exc).__name__}}: {{exc}}"
sys.stdout.buffer.write(pickle.dumps(payloads))
"""

LOAD = """
import pickle, sys
obj = pickle.loads(sys.stdin.buffer.read())
{check}
print("checked")
"""


def run_python(args, stdin=b"", pythonpath=()):
    """`python *args`: a script is `["-c", code]`, a module `["-m", name]`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, env=env, timeout=120)


@dataclass
class Case:
    """`top` is module-level code (imports, helpers), `local` the definitions
    that go inside a function in the "local" placement, `expr` the object to
    pickle, `check` code run on it (`obj`) in the loading interpreter.
    `package` names a package of `tests/fidelity_cases` the case lives in
    (copied next to the case's modules; workers can import it): the case's
    module is a subpackage of it, and `__main__` is run with `-m`.
    `sent_twice`: `obj` is dumped twice, and `check` gets the two payloads
    as `obj` (a list of bytes) to load them itself, as a worker would."""

    top: str
    local: str
    expr: str
    check: str
    package: str | None = None
    sent_twice: bool = False


def dump_script(case, placement, module_name):
    """The dumping interpreter's code that sets `obj`, and the source of the
    module it imports (None when the case is defined in `__main__`)."""
    top, local = textwrap.dedent(case.top), textwrap.dedent(case.local)
    if placement == "main":
        return f"{top}\n{local}\nobj = {case.expr}\n", None
    if placement == "local":
        body = textwrap.indent(f"{local}\nreturn {case.expr}\n", "    ")
        source = f"{top}\ndef make():\n{body}"
        setup = f"import {module_name}\nobj = {module_name}.make()\n"
    else:
        source = f"{top}\n{local}\n"
        setup = (
            f"import {module_name}\n"
            f"turbodill.register_pickle_by_value({module_name})\n"
            f"cloudpickle.register_pickle_by_value({module_name})\n"
            f"obj = eval({case.expr!r}, vars({module_name}))\n"
        )
    return setup, source


def outcomes(case, placement, tmp_path):
    """{lib: "ok" or what failed} for the case in that placement."""
    if case.package:
        # A subpackage of the case's package: relative imports resolve
        # against its `__package__`, not its `__name__`.
        shutil.copytree(os.path.join(CASES_DIR, case.package), tmp_path / case.package)
        module_name = f"{case.package}.fid_{placement}"
        module_file = tmp_path / case.package / f"fid_{placement}" / "__init__.py"
        module_file.parent.mkdir()
    else:
        module_name = f"fid_{placement}"
        module_file = tmp_path / f"{module_name}.py"
    setup, source = dump_script(case, placement, module_name)
    script = DUMP_ALL.format(setup=setup, libs=LIBS, sent_twice=case.sent_twice)
    if source is not None:
        module_file.write_text(source)
        args = ["-c", script]
    elif case.package:
        # `python -m package.module`: a `__main__` that has a package.
        module_file.write_text("")
        (module_file.parent / "__main__.py").write_text(script)
        args = ["-m", module_name]
    else:
        args = ["-c", script]
    proc = run_python(args, pythonpath=[str(tmp_path)])
    assert proc.returncode == 0, proc.stderr.decode()
    payloads = pickle.loads(proc.stdout)
    # A worker has the code of importable modules and packages, not that of
    # a module registered by value.
    importable = placement == "local" or case.package
    load_path = [str(tmp_path)] if importable else []
    results = {}
    for lib, payload in payloads.items():
        if isinstance(payload, str):
            results[lib] = payload
            continue
        done = run_python(["-c", LOAD.format(check=textwrap.dedent(case.check))], payload, load_path)
        ok = done.returncode == 0 and done.stdout.strip().endswith(b"checked")
        results[lib] = "ok" if ok else done.stderr.decode().strip().splitlines()[-1:]
    return results


def assert_fidelity(case, placement, tmp_path):
    results = outcomes(case, placement, tmp_path)
    peers_pass = [lib for lib in LIBS[1:] if results[lib] == "ok"]
    assert results["turbodill"] == "ok", f"turbodill failed where {peers_pass or 'no peer'} passed: {results}"


# ---- 2. `__builtins__` in a by-value function's globals ----------------------

BUILTINS_CASES = {
    # C code that imports lazily (`PyImport_Import`) reads `__builtins__` from
    # the calling function's globals.
    "datetime.strptime in a lambda": Case(
        top="import datetime",
        local='f = lambda: datetime.datetime.strptime("04-01-1943", "%d-%m-%Y")',
        expr="f",
        check="import datetime\nassert obj() == datetime.datetime(1943, 1, 4)",
    ),
    "a dynamic module keeps __builtins__": Case(
        top="import types",
        local="""
            dyn = types.ModuleType("dyn")
            exec("import datetime\\ndef parse(s):\\n    return datetime.datetime.strptime(s, '%Y')", vars(dyn))
        """,
        expr="dyn",
        check="""
            import builtins
            assert vars(obj)["__builtins__"] in (builtins, vars(builtins))
            assert obj.parse("1943").year == 1943
            exec("import json\\nvalue = json.dumps(1)", vars(obj))
            assert obj.value == "1"
        """,
    ),
}
if importlib.util.find_spec("numpy"):
    BUILTINS_CASES["numpy's a.sum() in a lambda"] = Case(
        top="",
        local="f = lambda a: a.sum()",
        expr="f",
        check="import numpy\nassert obj(numpy.arange(4)) == 6",
    )


def test_builtins_is_the_builtins_module_by_reference():
    import builtins

    import turbodill

    f = lambda: 1  # noqa: E731
    assert pickle.loads(turbodill.dumps(f)).__globals__["__builtins__"] is builtins
    # Deterministic: the module is named, never copied.
    assert b"builtins" in turbodill.dumps(f)
    assert turbodill.dumps(f) == turbodill.dumps(f)


# ---- 3. relative imports inside by-value functions ---------------------------

# Falling back on `__name__` to resolve a relative import is an ImportWarning
# (and wrong in a package's `__init__`): the warning is an error here.
RELATIVE_IMPORT_CASES = {
    "from ..helpers import greet, in a function": Case(
        top="",
        local="""
            def f():
                from ..helpers import greet
                return greet()
        """,
        expr="f",
        check="""
            import warnings
            warnings.simplefilter("error", ImportWarning)
            assert obj() == "hello from relpkg.helpers"
        """,
        package="relpkg",
    ),
    "from .. import helpers, in a lambda's callee": Case(
        top="",
        local="""
            def load_helpers():
                from .. import helpers
                return helpers
            f = lambda: load_helpers().greet()
        """,
        expr="f",
        check="""
            import warnings
            warnings.simplefilter("error", ImportWarning)
            assert obj() == "hello from relpkg.helpers"
        """,
        package="relpkg",
    ),
}


# ---- 4. only the globals the bytecode uses -----------------------------------

GLOBALS_CASES = {
    # No library pickles a generator: capturing `exit` fails the dump.
    "sys.exit with an unpicklable global named exit": Case(
        top="""
            import sys
            exit = (n for n in range(3))
        """,
        local="""
            def f(code):
                try:
                    sys.exit(code)
                except SystemExit as stop:
                    return stop.code
        """,
        expr="f",
        check="assert obj(3) == 3",
    ),
    "os.path.join with an unpicklable global named path and join": Case(
        top="""
            import os
            path = join = (n for n in range(3))
        """,
        local="f = lambda *parts: os.path.join(*parts)",
        expr="f",
        check='assert obj("a", "b") == "a/b"',
    ),
    "globals of nested functions and lambdas": Case(
        top="""
            K = 5
            def double(x):
                return 2 * x
        """,
        local="""
            def f():
                def inner():
                    return (lambda: double(K))()
                return inner()
        """,
        expr="f",
        check="assert obj() == 10",
    ),
    "global statements that store and delete": Case(
        top="COUNT = 0",
        local="""
            def bump():
                global COUNT
                COUNT += 1
                return COUNT
            def forget():
                global COUNT
                del COUNT
        """,
        expr="(bump, forget)",
        check="""
            bump, forget = obj
            assert bump() == 1 and bump() == 2
            forget()
            try:
                bump()
            except NameError:
                pass
            else:
                raise AssertionError("COUNT was deleted")
        """,
    ),
    # A class body reads names with LOAD_NAME, which falls back to the globals.
    "a class body inside a function reads a global": Case(
        top="LIMIT = 7",
        local="""
            def f():
                class Config:
                    limit = LIMIT
                return Config.limit
        """,
        expr="f",
        check="assert obj() == 7",
    ),
}


def test_attribute_names_are_not_captured():
    import sys

    import turbodill

    namespace = {"sys": sys, "exit": "a global that the function never reads"}
    exec("def f():\n    return sys.exit", namespace)
    assert b"a global that the function never reads" not in turbodill.dumps(namespace["f"])


# ---- 9. bound methods whose function getattr would not find -----------------

METHOD_CASES = {
    "a function bound by hand in __init__": Case(
        top="""
            def double(self):
                return self.value * 2
        """,
        local="""
            class Holder:
                def __init__(self):
                    self.value = 21
                    self.f2 = double.__get__(self)
        """,
        expr="Holder()",
        check="assert obj.f2() == 42 and obj.f2.__self__ is obj",
    ),
    "a function bound by hand, on its own": Case(
        top="""
            def double(self):
                return self.value * 2
        """,
        local="""
            class Holder:
                value = 4
            bound = double.__get__(Holder())
        """,
        expr="bound",
        check="assert obj() == 8",
    ),
    "a lambda attached to the class after its statement": Case(
        top="",
        local="""
            class A:
                value = 3
            A.method = lambda self: self.value + 1
        """,
        expr="A().method",
        check="assert obj() == 4",
    ),
    # The stdlib writes getattr("a", "join"): str.join, silently another function.
    "an importable function bound to a str": Case(
        top="import os, types",
        local='bound = types.MethodType(os.path.join, "a")',
        expr="bound",
        check='assert obj("b") == "a/b"',
    ),
    "a method and a classmethod found by name": Case(
        top="",
        local="""
            class Counter:
                start = 10
                def __init__(self):
                    self.n = 1
                def get(self):
                    return self.n
                @classmethod
                def first(cls):
                    return cls.start
        """,
        expr="(Counter().get, Counter.first)",
        check="get, first = obj\nassert get() == 1 and first() == 10",
    ),
}


def test_methods_found_by_name_keep_the_stdlib_bytes():
    import fractions
    import types

    import turbodill

    half = fractions.Fraction(1, 2)
    for method in (half.limit_denominator, fractions.Fraction.from_float, half.__repr__):
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            assert turbodill.dumps(method, protocol=proto) == pickle.dumps(method, protocol=proto)
    # Not found by name: the stdlib's bytes would load another function.
    bound = types.MethodType(os.path.join, "a")
    assert pickle.loads(pickle.dumps(bound))("b") == "b"
    assert pickle.loads(turbodill.dumps(bound))("b") == "a/b"


FLASK_APP = """
    import flask
    app = flask.Flask("fidelity_app")
    app.config["GREETING"] = "hello"

    @app.route("/hello/<name>")
    def hello(name):
        return f"{flask.current_app.config['GREETING']} {name}"

    @app.route("/sum", methods=["POST"])
    def total():
        return {"sum": sum(flask.request.get_json())}

    with app.test_request_context():
        assert flask.url_for("hello", name="x") == "/hello/x"  # compiles the rules' builders
"""


@pytest.mark.skipif(not importlib.util.find_spec("flask"), reason="needs flask")
def test_flask_app_with_routes_serves_a_request_after_the_trip(tmp_path):
    # werkzeug's Rule binds compiled builders as `self._build` and
    # `self._build_unknown`: methods that getattr cannot find by their name.
    case = Case(
        top="",
        local=FLASK_APP,
        expr="app",
        check="""
            client = obj.test_client()
            assert client.get("/hello/world").data == b"hello world"
            assert client.post("/sum", json=[1, 2, 3]).get_json() == {"sum": 6}
            with obj.test_request_context():
                import flask
                assert flask.url_for("hello", name="again") == "/hello/again"
        """,
    )
    for placement in ("main", "local"):
        (tmp_path / placement).mkdir()
        assert_fidelity(case, placement, tmp_path / placement)


def test_weak_proxy_to_an_object_of_the_payload_stays_a_proxy_to_it():
    import weakref

    import turbodill

    class Node:  # what Flask's JSON provider does with its app
        pass

    node = Node()
    node.name = "root"
    node.me = weakref.proxy(node)
    loaded = pickle.loads(turbodill.dumps(node))
    assert type(loaded.me) is weakref.ProxyType and loaded.me.name == "root"
    assert loaded.me.me.name == "root"
    # A proxy to an object outside the payload keeps the stdlib's bytes (a copy).
    target = {1, 2}
    alone = weakref.proxy(target)
    assert turbodill.dumps(alone) == pickle.dumps(alone)


# ---- 12. stateless workers ----------------------------------------------------

# cloudpickle's contract, which Dask and loky rely on: each payload brings its
# by-value functions' globals, fresh, even when a class it uses is already
# loaded. (Globals of an importable module are that module's, shared.)
STATELESS_CASES = {
    "a bound method of a by-value class, sent twice": Case(
        top="GLOBAL_VARIABLE = 0",
        local="""
            class CustomClass:
                def mutate_globals(self):
                    global GLOBAL_VARIABLE
                    GLOBAL_VARIABLE += 1
                    return GLOBAL_VARIABLE
            custom_object = CustomClass()
        """,
        expr="custom_object.mutate_globals",
        check="""
            first, second = (pickle.loads(payload) for payload in obj)
            assert first() == 1 and first() == 2
            assert second() == 1, "the second payload saw the globals the first one mutated"
            # One class for both payloads.
            assert type(first.__self__) is type(second.__self__)
        """,
        sent_twice=True,
    ),
    "a lambda reading a global another payload's function mutated": Case(
        top="STATE = []",
        local="""
            def record(x):
                STATE.append(x)
                return len(STATE)
            task = lambda x: record(x)
        """,
        expr="task",
        check="""
            first, second = (pickle.loads(payload) for payload in obj)
            assert first("a") == 1 and first("b") == 2
            assert second("c") == 1
        """,
        sent_twice=True,
    ),
}


def test_instances_bound_in_a_registered_module_travel_by_value(tmp_path):
    # A stateless instance bound at module level goes by reference from an
    # importable module (`SENTINEL = object()`), never from one registered by
    # value: the worker cannot import it.
    case = Case(
        top="""
            class Settings:
                pass
            DEFAULTS = Settings()
            MARKER = object()
        """,
        local="",
        expr="(DEFAULTS, MARKER)",
        check='assert type(obj[0]).__name__ == "Settings" and type(obj[1]) is object',
    )
    assert_fidelity(case, "registered", tmp_path)


# ---- 14. endless recursion in user code during dumps -------------------------


class Delegating:
    """`__getattribute__` that calls `getattr(self, name)`: it never ends."""

    def __getattribute__(self, name):
        return getattr(self, name)


class ReducesItself:
    def __reduce__(self):
        return self.__reduce__()


@pytest.mark.parametrize(
    "make,culprit,path",
    [
        (Delegating, "Delegating", None),
        (ReducesItself, "ReducesItself", None),
        (lambda: {"key": [Delegating()]}, "Delegating", "when pickling obj['key'][0]"),
    ],
)
def test_endless_recursion_in_user_code_is_a_pickling_and_a_recursion_error(make, culprit, path):
    import cloudpickle

    import turbodill

    obj = make()
    with pytest.raises(pickle.PicklingError) as cloudpickle_error:
        cloudpickle.dumps(obj)
    with pytest.raises(RecursionError):
        pickle.dumps(obj)
    with pytest.raises(turbodill.PicklingRecursionError) as info:
        turbodill.dumps(obj)
    error = info.value
    assert isinstance(error, pickle.PicklingError) and isinstance(error, RecursionError)
    assert "endless recursion" in str(error) and "maximum recursion depth" in str(error)
    assert type(error.__cause__) is RecursionError
    assert f"cannot pickle '{culprit}' object" in str(error)
    assert getattr(error, "__notes__", None) == ([path] if path else None)
    assert cloudpickle_error.type is pickle.PicklingError
    # The interpreter is fine afterwards.
    assert pickle.loads(turbodill.dumps([1, 2])) == [1, 2]


# ---- 13. bytes do not depend on which strings are interned --------------------

# Attribute values equal to method and argument names: whether two equal names
# are one object depends on interning, which differs between a process that
# compiled the code and one that loaded it.
INTERNING_CASE = """
import pickle, sys, turbodill
{prelude}
class Widget:
    arg_1 = "class_value"
    label = "join"
    def join(self):
        return "joined"
    def test_method(self, arg_1, join):
        return (arg_1, join, "class_value")
def helper(arg_1="test_method"):
    return Widget().test_method(arg_1, "join")
sys.stdout.buffer.write(turbodill.dumps((Widget, helper)))
"""

REDUMP_IN_WORKER = """
import pickle, sys, turbodill
{prelude}
Widget, helper = pickle.loads(sys.stdin.buffer.read())
assert helper() == ("test_method", "join", "class_value")
sys.stdout.buffer.write(turbodill.dumps((Widget, helper)))
"""

INTERNED_FIRST = (
    "kept = [sys.intern(''.join(s)) for s in ('class_value', 'test_method', 'Widget.join', 'arg_1', 'helper')]"
)


def test_bytes_do_not_depend_on_interning():
    payloads = []
    for prelude in ("", INTERNED_FIRST):
        proc = run_python(["-c", INTERNING_CASE.format(prelude=prelude)])
        assert proc.returncode == 0, proc.stderr.decode()
        payloads.append(proc.stdout)
    # Two fresh processes, one of which interned the strings first.
    assert payloads[0] == payloads[1]
    # A worker that loaded the payload pickles it back to the same bytes
    # (cloudpickle's chained pickling), whatever it interned before.
    for prelude in ("", INTERNED_FIRST):
        worker = run_python(["-c", REDUMP_IN_WORKER.format(prelude=prelude)], payloads[0])
        assert worker.returncode == 0, worker.stderr.decode()
        assert worker.stdout == payloads[0]


# ---- every case table, in every placement --------------------------------------

CASE_TABLES = {
    "2 __builtins__": BUILTINS_CASES,
    "3 relative imports": RELATIVE_IMPORT_CASES,
    "4 only the globals used": GLOBALS_CASES,
    "9 bound methods": METHOD_CASES,
    "12 fresh globals per payload": STATELESS_CASES,
}


@pytest.mark.parametrize(
    "case,placement",
    [
        pytest.param(cases[name], placement, id=f"{item}: {name} ({placement})")
        for item, cases in CASE_TABLES.items()
        for name in cases
        for placement in PLACEMENTS
    ],
)
def test_case_in_a_fresh_interpreter(case, placement, tmp_path):
    assert_fidelity(case, placement, tmp_path)
