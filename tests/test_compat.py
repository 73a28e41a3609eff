"""Migration: payloads written by dill and cloudpickle load with
``turbodill.loads(data, compat=True)`` in a fresh interpreter where neither
library can be imported, and behave as when the library itself loads them
(checked case by case against the library's own loader). Payloads come from
the installed releases (written here, by ``tests/data/compat/make_payloads.py``)
and from older ones (committed under tests/data/compat/, with the command
that made them)."""

import json
import pathlib
import subprocess
import sys

import pytest

DATA = pathlib.Path(__file__).parent / "data" / "compat"

LOAD = r"""
import io, json, pickle, sys
lib, mode, path = sys.argv[1:]
if mode == "compat":
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("dill", "cloudpickle"):
                raise ImportError(f"{name} is not importable here")
    sys.meta_path.insert(0, Blocker())
    import turbodill
    for blocked in ("dill", "cloudpickle"):
        try:
            __import__(blocked)
        except ImportError:
            pass
        else:
            raise AssertionError(blocked + " is importable")
    load = lambda data: turbodill.loads(data, compat=True)
    load_file = lambda f: turbodill.Unpickler(f, compat=True).load()
else:
    load = __import__(lib).loads
    load_file = lambda f: __import__(lib).load(f)

CHECKS = {
    "function": lambda f: f(3),
    "closure": lambda f: f(1),
    "lambda": lambda f: f(3),
    "recursive": lambda f: f(5),
    "class": lambda c: (c.__name__, c(1, -2).norm()),
    "instance": lambda p: (type(p).__name__, p.x, p.norm()),
    "enum": lambda e: [(m.name, m.value) for m in e],
    "member": lambda m: (type(m).__name__, m.name, m.value, m is type(m).GREEN),
    "dataclass": lambda d: (type(d).__name__, d.a, d.b, d == type(d)(1, [2])),
    "abc": lambda i: (type(i).__name__, i.f(), isinstance(i, type(i).__mro__[1])),
    "namedtuple": lambda t: (type(t).__name__, tuple(t), t.b),
    "module": lambda m: (m.__name__, m.g()),
    "lock": lambda l: l.locked(),
}
with open(path, "rb") as f:
    payloads = pickle.load(f)
results = {}
for name, data in payloads.items():
    check = CHECKS[name.split("-")[0]]
    try:
        obj = load(data) if len(results) % 2 else load_file(io.BytesIO(data))
        results[name] = repr(check(obj))
    except Exception as e:
        results[name] = "error: " + type(e).__name__
print(json.dumps(results))
"""


def load_all(lib, mode, path):
    proc = subprocess.run([sys.executable, "-c", LOAD, lib, mode, str(path)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout)


# What each library's own loader gets right in a fresh interpreter (dill
# without recurse points functions' globals at the loader's __main__, so
# those calls fail under dill too; dill cannot pickle an Enum class defined in
# __main__ or load a module made at run time; cloudpickle refuses locks).
LOADS = {
    "dill": {
        "class",
        "class-recurse",
        "closure-recurse",
        "dataclass",
        "dataclass-recurse",
        "function-recurse",
        "instance",
        "instance-recurse",
        "lambda-recurse",
        "lock",
        "lock-recurse",
        "namedtuple",
        "namedtuple-recurse",
        "recursive-recurse",
    },
    "cloudpickle": {
        "abc",
        "class",
        "closure",
        "dataclass",
        "enum",
        "function",
        "instance",
        "lambda",
        "member",
        "module",
        "namedtuple",
        "recursive",
    },
}


# dill 0.3.6 predates Python 3.13: the closures it wrote there (cells filled
# after the function) do not load under dill itself either.
NOT_LOADED = {"dill-0.3.6-py313.pkl": {"closure-recurse", "recursive-recurse"}}


def check_same_behaviour(lib, path):
    native = load_all(lib, "native", path)
    compat = load_all(lib, "compat", path)
    working = {name for name, result in native.items() if not result.startswith("error")}
    required = LOADS[lib] - NOT_LOADED.get(path.name, set())
    assert required <= working, sorted(required - working)
    assert {name: compat[name] for name in working} == {name: native[name] for name in working}


@pytest.mark.parametrize("lib", ["dill", "cloudpickle"])
def test_payloads_of_the_installed_release(lib, tmp_path):
    pytest.importorskip(lib, reason=f"{lib} is not installed")
    path = tmp_path / f"{lib}.pkl"
    subprocess.run([sys.executable, DATA / "make_payloads.py", lib, path], check=True, capture_output=True, timeout=120)
    check_same_behaviour(lib, path)


# Code objects are bytecode: each Python minor version has its own files.
OLD = sorted(DATA.glob(f"*-py{sys.version_info.major}{sys.version_info.minor}.pkl"))


@pytest.mark.parametrize("path", OLD, ids=[p.name for p in OLD])
def test_payloads_of_older_releases(path):
    lib = path.name.split("-")[0]
    pytest.importorskip(lib, reason=f"{lib} is not installed (its loader is the reference)")
    check_same_behaviour(lib, path)


def test_compat_names_an_unknown_helper():
    import pickle

    import turbodill

    data = b"\x80\x02cdill._dill\n_no_such\n."
    with pytest.raises(pickle.UnpicklingError, match="does not know dill._dill._no_such"):
        turbodill.loads(data, compat=True)
    with pytest.raises(ValueError, match="allow"):
        turbodill.loads(data, compat=True, allow="data")


def test_compat_with_a_key_and_from_a_file():
    import io

    import turbodill

    signed = turbodill.dumps({"f": lambda x: x + 1}, key=b"k")
    assert turbodill.loads(signed, compat=True, key=b"k")["f"](1) == 2
    with pytest.raises(turbodill.SignatureError):
        turbodill.loads(signed[:-1] + bytes([signed[-1] ^ 1]), compat=True, key=b"k")
    assert turbodill.load(io.BytesIO(turbodill.dumps([1, 2])), compat=True) == [1, 2]
    assert turbodill.load(io.BytesIO(signed), compat=True, key=b"k")["f"](2) == 3
