"""The dill- and cloudpickle-compatible API on top of the pickler."""

import io
import math
import os
import pathlib
import pickle
import re
import socket
import sys
import types

import pytest

import _subproc
import turbodill


def test_settings_are_dills_and_drive_defaults():
    assert turbodill.settings == {
        "protocol": pickle.DEFAULT_PROTOCOL,
        "byref": False,
        "fmode": 0,
        "recurse": False,
        "ignore": False,
    }
    old = turbodill.settings["protocol"]
    turbodill.settings["protocol"] = 2
    try:
        assert turbodill.dumps([1]) == pickle.dumps([1], 2)
    finally:
        turbodill.settings["protocol"] = old
    assert turbodill.dumps([1], 3, False, 0, True) == pickle.dumps([1], 3)  # dill's positional order


def test_copy_pickles_check():
    f = turbodill.copy(lambda x: x * 2)
    assert f(4) == 8
    assert turbodill.pickles(lambda: 1) and turbodill.pickles({"a": [1]}, exact=True)
    sock = socket.socket()
    try:
        assert not turbodill.pickles(sock)
        assert not turbodill.pickles(sock, safe=True)
    finally:
        sock.close()
    out = io.StringIO()
    sys.stdout, saved = out, sys.stdout
    try:
        turbodill.check({"k": [1, 2]})
    finally:
        sys.stdout = saved
    assert out.getvalue().strip() == "{'k': [1, 2]}"


def test_loads_and_unpickler_accept_dills_ignore():
    data = turbodill.dumps([1, 2])
    assert turbodill.loads(data, ignore=True) == [1, 2]
    assert turbodill.load(io.BytesIO(data), ignore=False) == [1, 2]
    assert turbodill.Unpickler(io.BytesIO(data), ignore=True).load() == [1, 2]


class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees


def test_register_a_dill_style_saver():
    @turbodill.register(Celsius)
    def save_celsius(pickler, obj):
        pickler.save_reduce(Celsius, (obj.degrees + 0.5,), obj=obj)

    try:
        assert pickle.loads(turbodill.dumps(Celsius(20))).degrees == 20.5
    finally:
        from turbodill import _reducers

        _reducers.unregister_saver(Celsius)
    assert pickle.loads(turbodill.dumps(Celsius(20))).degrees == 20


def test_register_pickle_by_value_ships_a_module_workers_lack(tmp_path):
    (tmp_path / "mylib.py").write_text("SCALE = 3\ndef triple(x):\n    return x * SCALE\n")
    dump = f"""
    import sys, turbodill
    sys.path.insert(0, {str(tmp_path)!r})
    import mylib
    turbodill.register_pickle_by_value(mylib)
    assert turbodill.list_registry_pickle_by_value() == {{'mylib'}}
    sys.stdout.buffer.write(turbodill.dumps(mylib.triple))
    """
    data = _subproc.code(dump).stdout
    # The loader has no mylib on its path.
    load = "import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); assert f(2) == 6; print('ok')"
    out = _subproc.code(load, stdin=data).stdout
    assert out.strip() == b"ok"


def test_register_pickle_by_value_ships_module_level_instances_by_value(tmp_path):
    # A stateless instance or bare object() bound at module level is a
    # sentinel sent by reference, except in a module the loader lacks.
    (tmp_path / "mylib2.py").write_text(
        "class Child:\n    def hello(self):\n        return 'hi'\nINSTANCE = Child()\nSENTINEL = object()\n"
    )
    dump = f"""
    import sys, turbodill
    sys.path.insert(0, {str(tmp_path)!r})
    import mylib2
    turbodill.register_pickle_by_value(mylib2)
    sys.stdout.buffer.write(turbodill.dumps((mylib2.INSTANCE, mylib2.SENTINEL)))
    """
    data = _subproc.code(dump).stdout
    load = """
    import pickle, sys
    i, s = pickle.loads(sys.stdin.buffer.read())
    assert i.hello() == 'hi'
    print(type(s).__name__)
    """
    out = _subproc.code(load, stdin=data).stdout
    assert out.strip() == b"object"


def test_register_pickle_by_value_checks_its_argument():
    with pytest.raises(ValueError):
        turbodill.register_pickle_by_value("os")
    with pytest.raises(ValueError):
        turbodill.unregister_pickle_by_value(types)
    with pytest.raises(ValueError):
        turbodill.register_pickle_by_value(types.ModuleType("not_imported"))


def test_deterministic_sets_across_hash_seeds():
    code = (
        "import sys, turbodill; sys.stdout.buffer.write(turbodill.dumps("
        "[{'alpha', 'beta', 'gamma', 'delta'}, frozenset({'x', 'y', 'z'})], deterministic=True))"
    )
    outs = {_subproc.code(code, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("0", "1", "2", "3")}
    assert len(outs) == 1
    assert pickle.loads(outs.pop()) == [{"alpha", "beta", "gamma", "delta"}, frozenset({"x", "y", "z"})]


def test_byref_pickles_main_classes_by_reference():
    code = """
    import sys, turbodill
    class C: pass
    by_value, by_ref = turbodill.dumps(C), turbodill.dumps(C, byref=True)
    assert b'make_class' in by_value and b'make_class' not in by_ref and b'__main__' in by_ref
    print('ok')
    """
    out = _subproc.code(code).stdout
    assert out.strip() == b"ok"


def test_detect_reports_what_fails_and_what_a_function_uses():
    sock = socket.socket()
    try:
        assert turbodill.detect.baditems([1, sock, "x"]) == [sock]
        assert turbodill.detect.badobjects(sock) is sock and turbodill.detect.badobjects([1]) is None
        assert turbodill.detect.badtypes(sock) is socket.socket
        assert isinstance(turbodill.detect.errors(sock), TypeError)
        assert turbodill.detect.errors([1]) is None

        bad = turbodill.detect.badobjects(types.SimpleNamespace(ok=1, bad=sock), depth=1)
        assert bad["bad"] is sock and "ok" not in bad
    finally:
        sock.close()

    factor = 3

    def outer(x):
        return math.sqrt(x) * factor

    assert turbodill.detect.freevars(outer) == {"factor": 3}
    assert turbodill.detect.globalvars(outer) == {"math": math}


def test_session_exceptions_are_exported():
    for name in ("SessionError", "SessionVersionError", "SessionWarning"):
        assert getattr(turbodill, name) is getattr(turbodill.session, name) and name in turbodill.__all__


def test_cli_version():
    out = _subproc.python(["-m", "turbodill", "--version"], text=True).stdout
    assert out == f"turbodill {turbodill.__version__} (Python {sys.version.split()[0]})\n"


def test_readme_use_block_runs(tmp_path):
    """The README's first Python example, as a newcomer pastes it."""
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    first_block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    check = "\nimport pickle\nassert obj2 == obj and pickle.loads(payload)(3) == 9\n"
    _subproc.code(first_block + check, cwd=tmp_path)
