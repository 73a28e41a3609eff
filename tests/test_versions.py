"""What differs between the supported CPython minor versions: which builds
import turbodill at all, by-value code objects bound to the minor version
that wrote them, and the bytes of dotted names (3.13 changed them)."""

import functools
import pickle
import subprocess
import sys
import textwrap

import pytest

import turbodill
from turbodill import _versions

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


# ---- which interpreters --------------------------------------------------------


def test_this_interpreter_is_accepted():
    _versions.check_interpreter(sys.implementation.name, sys.version_info, False)


@pytest.mark.parametrize(
    "implementation, version, gil_disabled, message",
    [
        ("cpython", (3, 10, 12), False, "supports CPython 3.11, 3.12, 3.13, 3.14, not 3.10"),
        ("cpython", (3, 15, 0), False, "not 3.15"),
        ("cpython", (4, 0, 0), False, "not 4.0"),
        ("cpython", (3, 13, 0), True, r"free-threaded CPython \(3.13t\)"),
        ("cpython", (3, 14, 0), True, r"free-threaded CPython \(3.14t\)"),
        ("pypy", (3, 11, 0), False, "CPython only, not pypy"),
    ],
)
def test_unsupported_interpreters_are_refused_at_import(implementation, version, gil_disabled, message):
    with pytest.raises(ImportError, match=message):
        _versions.check_interpreter(implementation, version, gil_disabled)


def test_import_fails_cleanly_where_the_check_fails():
    # The check runs before the native module loads: a fake free-threaded
    # build gets the ImportError, not a crash or a half-imported package.
    code = textwrap.dedent(
        """
        import sysconfig
        real = sysconfig.get_config_var
        sysconfig.get_config_var = lambda name: 1 if name == "Py_GIL_DISABLED" else real(name)
        try:
            import turbodill
        except ImportError as err:
            print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "does not support free-threaded CPython" in out.stdout


# ---- by-value code: same minor version only ------------------------------------

LOAD_ISOLATED = """
import pickle, sys
data = sys.stdin.buffer.read()
try:
    f = pickle.loads(data)
except AttributeError as err:
    print("refused:", err)
else:
    print("loaded:", f(20))
"""


def load_without_turbodill(data):
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOAD_ISOLATED], input=data, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


def closure(n):
    def add(x):
        return x + n

    return add


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_by_value_code_loads_on_its_own_minor_version(protocol):
    assert load_without_turbodill(turbodill.dumps(closure(22), protocol)) == "loaded: 42"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_by_value_code_from_another_minor_version_is_refused_before_any_code_is_made(protocol):
    tag = sys.implementation.cache_tag.encode()  # b"cpython-311"
    data = turbodill.dumps([closure(1), closure(2), lambda: 3], protocol)
    # The tag is written once (a key and a message), however many code objects.
    assert data.count(tag) == 2
    # As written by another version: same length, so the opcodes stay valid.
    other = b"cpython-3%02d" % (sys.version_info[1] + 1)
    assert len(other) == len(tag)
    out = load_without_turbodill(data.replace(tag, other))
    assert out.startswith("refused: type object 'code' has no attribute")
    assert other.decode() in out and "loads on that version only" in out


def test_code_objects_keep_every_field_of_this_version():
    def gen(x):
        try:
            yield x
        except ValueError:
            yield -x

    code = gen.__code__
    copy = pickle.loads(turbodill.dumps(code))
    for field in (
        "co_argcount",
        "co_posonlyargcount",
        "co_kwonlyargcount",
        "co_nlocals",
        "co_stacksize",
        "co_flags",
        "co_code",
        "co_consts",
        "co_names",
        "co_varnames",
        "co_filename",
        "co_name",
        "co_qualname",
        "co_firstlineno",
        "co_linetable",
        "co_exceptiontable",
        "co_freevars",
        "co_cellvars",
    ):
        assert getattr(copy, field) == getattr(code, field), field
    assert copy == code
    assert list(copy.co_positions()) == list(code.co_positions())


# ---- bytes that differ between versions ------------------------------------------


class Outer:
    class Inner:
        pass


class IntWithNewArgsEx(int):
    # object.__reduce_ex__ below protocol 4 gives
    # partial(cls.__new__, cls, ...), and cls.__new__ is the nested
    # attribute int.__new__ (getattr(int, '__new__')).
    def __getnewargs_ex__(self):
        return (int(self),), {}


class Recursive:
    pass


Recursive.ref = Recursive
Recursive.__qualname__ = "Recursive.ref"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "obj",
    [
        Outer.Inner,
        [Outer.Inner, Outer, Outer.Inner],
        IntWithNewArgsEx(5),
        [IntWithNewArgsEx(5), IntWithNewArgsEx(6), int.__new__],
        functools.partial(IntWithNewArgsEx.__new__, IntWithNewArgsEx, 7),
        Recursive,
        (Recursive, Recursive),
    ],
    ids=[
        "nested class",
        "nested and parent",
        "int subclass",
        "int subclasses",
        "partial",
        "self-ref",
        "self-ref twice",
    ],
)
def test_dotted_names_are_written_as_this_versions_pickle_writes_them(obj, protocol):
    try:
        expected = pickle.dumps(obj, protocol)
    except RecursionError:
        # Up to 3.12 a class named by an attribute of itself recurses below
        # protocol 4 (getattr(Recursive, 'ref') saves Recursive first).
        assert sys.version_info < (3, 13) and protocol < 4
        with pytest.raises(RecursionError):
            turbodill.dumps(obj, protocol)
        return
    assert turbodill.dumps(obj, protocol) == expected
    assert pickle.dumps(pickle.loads(expected), protocol) == expected
