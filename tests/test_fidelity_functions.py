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
payloads = {{}}
for lib in {libs!r}:
    try:
        if lib == "dill":
            payloads[lib] = dill.dumps(obj, recurse=True)
        else:
            payloads[lib] = sys.modules[lib].dumps(obj)
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


def run_python(code, stdin=b"", pythonpath=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, env=env, timeout=120)


@dataclass
class Case:
    """`top` is module-level code (imports, helpers), `local` the definitions
    that go inside a function in the "local" placement, `expr` the object to
    pickle, `check` code run on it (`obj`) in the loading interpreter.
    `package` names a package of `tests/fidelity_cases` the case lives in
    (copied next to the case's modules; workers can import it)."""

    top: str
    local: str
    expr: str
    check: str
    package: str | None = None


def dump_script(case, placement, module_name):
    """The dumping interpreter's script, and the module it imports (if any)
    as (file name, source)."""
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
    short = f"fid_{placement}"
    module_name = f"{case.package}.{short}" if case.package else short
    setup, source = dump_script(case, placement, module_name)
    if case.package:
        shutil.copytree(os.path.join(CASES_DIR, case.package), tmp_path / case.package)
    if source is not None:
        (tmp_path / (module_name.replace(".", os.sep) + ".py")).write_text(source)
    proc = run_python(DUMP_ALL.format(setup=setup, libs=LIBS), pythonpath=[str(tmp_path)])
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
        done = run_python(LOAD.format(check=textwrap.dedent(case.check)), payload, load_path)
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


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", BUILTINS_CASES)
def test_builtins_in_by_value_globals(name, placement, tmp_path):
    assert_fidelity(BUILTINS_CASES[name], placement, tmp_path)


def test_builtins_is_the_builtins_module_by_reference():
    import builtins

    import turbodill

    f = lambda: 1  # noqa: E731
    assert pickle.loads(turbodill.dumps(f)).__globals__["__builtins__"] is builtins
    # Deterministic: the module is named, never copied.
    assert b"builtins" in turbodill.dumps(f)
    assert turbodill.dumps(f) == turbodill.dumps(f)
