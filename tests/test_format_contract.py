"""The format contract: payloads written by earlier releases
(``tests/data/payloads/<release>/py<major><minor>/``, made by
``tests/data/make_payloads.py``) load in this build and behave as they did,
each in a fresh interpreter. Payloads are per Python minor version (by-value
code objects are version-specific): this runs those of the running one.

A change to a name or signature in ``turbodill._reconstruct`` breaks old
payloads, and this test; so does any change to its public functions at all
(``test_reconstruct_signatures_are_the_contract``), since payloads name them.
"""

import inspect
import pathlib
import sys
import textwrap

import pytest

import _subproc
import turbodill
import turbodill._reconstruct

DATA = pathlib.Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
try:
    import make_payloads
finally:
    sys.path.remove(str(DATA))

PYTHON = f"py{sys.version_info[0]}{sys.version_info[1]}"
PAYLOADS = sorted(DATA.glob(f"payloads/*/{PYTHON}/*.pkl"))

# What payloads call, as this release defines it. Changing any of these
# (a name, a parameter, a default) breaks payloads already written.
# The names each format version added (``_reconstruct.FORMAT_VERSION``): a
# name, once released, keeps its signature and meaning for good.
FORMAT_1 = {
    "class_setstate": "(cls, state)",
    "make_class": "(metaclass, name, bases, key, namespace)",
    "make_context": "(items)",
    "make_enum": "(metaclass, name, bases, key, members, namespace)",
    "make_exception": "(cls, args, state, traceback, cause, context, suppress_context)",
    "make_lock": "(locked)",
    "make_lru_cache": "(func, maxsize, typed)",
    "make_memoryview": "(data, fmt, shape)",
    "make_rlock": "(count)",
    "make_traceback": "(frames)",
    "make_typevar": "(name, bound, constraints, covariant, contravariant, key)",
    "make_weakref": "(referent)",
    "open_file": "(name, mode, position, closed, text, encoding, fmode)",
    "real_mapping": "(proxy)",  # called while pickling, never named by a payload
}
FORMAT_2 = {  # suspended generators and coroutines; type parameters; delegating instances
    "make_finished_generator": "(code, name, qualname)",
    "make_generator": "(func, code_digest, python_version)",
    "make_type_parameter": "(kind, name, constraints, options, key)",
    "restore_generator": "(gen, state)",
    "set_instance_state": "(obj, state)",
}
RECONSTRUCT_SIGNATURES = FORMAT_1 | FORMAT_2
# The committed payloads, by the format their release wrote.
PAYLOAD_FORMAT = {"0.1.0": FORMAT_1}

LOAD = """
import pickle, sys
import turbodill
{prepare}
with open(sys.argv[1], "rb") as f:
    data = f.read()
obj = {load}
{check}
print("checked")
"""

LOAD_SESSION = """
import sys
import turbodill
turbodill.load_session(sys.argv[1]{key})
{check}
print("checked")
"""


def _case_of(path):
    return make_payloads.CASES[path.name.split(".")[0]]


def test_this_python_has_payloads():
    assert PAYLOADS, (
        f"no payloads for Python {PYTHON}: write this release's with tests/data/make_payloads.py run by that Python"
    )


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_payload_loads_and_behaves(path, tmp_path):
    case = _case_of(path)
    key = "" if case.key is None else f", key={case.key!r}"
    check = textwrap.dedent(case.check)
    if case.session:
        program = LOAD_SESSION.format(key=key, check=check)
    else:
        load = "pickle.loads(data)" if case.key is None else f"turbodill.loads(data{key})"
        program = LOAD.format(prepare=textwrap.dedent(case.prepare), load=load, check=check)
    out = _subproc.code(program, path, cwd=tmp_path).stdout
    assert out.strip().endswith(b"checked"), out


def test_payloads_name_every_reconstructor():
    """The payloads exercise every function of ``_reconstruct`` a payload
    can name, so none can change unnoticed."""
    for release, names in PAYLOAD_FORMAT.items():
        named = set()
        for path in PAYLOADS:
            if release in path.parts and not _case_of(path).session:
                named |= {g for g in turbodill.inspect(path.read_bytes()).globals if g.startswith("turbodill.")}
        expected = {f"turbodill._reconstruct.{name}" for name in names if name != "real_mapping"}
        assert named == expected, release


def test_reconstruct_signatures_are_the_contract():
    public = {
        name: str(inspect.signature(value))
        for name, value in vars(turbodill._reconstruct).items()
        if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == "turbodill._reconstruct"
    }
    assert public == RECONSTRUCT_SIGNATURES
    assert turbodill._reconstruct.FORMAT_VERSION == 2
