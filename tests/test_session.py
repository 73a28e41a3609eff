"""Sessions, checked the way users need them: a script defines things in
`__main__` and dumps its session; a fresh interpreter loads it and uses
every entry. Plus the file's safety: header readable without unpickling,
atomic replacement, no symbolic links, mode 0600, version refusal."""

import io
import json
import os
import pickle
import re
import signal
import stat
import sys
import textwrap
import types

import pytest

import _subproc
import turbodill
from turbodill import _native
from turbodill.session import SessionError, SessionVersionError, SessionWarning

SCRIPT = """
import collections, math, socket, threading, warnings
import turbodill

counter = 41
settings = {"mode": "fast", "sizes": [1, 2, 3]}
same_settings = settings
square = lambda v: v * v

def scale(v):
    return v * factor

def total(values):
    return sum(scale(v) for v in values) + counter

factor = 3

class Account:
    rate = 0.5
    def __init__(self, owner, balance):
        self.owner, self.balance = owner, balance
    def interest(self):
        return self.balance * self.rate

alice = Account("alice", 100)
accounts = [alice, Account("bob", 10)]
log = open("log.txt", "w+")
log.write("first line\\n")
guard = threading.Lock()
held = threading.Lock()
held.acquire()
conn = socket.socket()
counts = collections.Counter("abca")

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    path = turbodill.dump_session("session.pkl")
assert path == "session.pkl", path
[w] = caught
assert w.category is turbodill.session.SessionWarning, w
assert w.filename == __file__, w.filename  # attributed to the caller
print(str(w.message))
"""

CHECK = """
import math, warnings
import turbodill

turbodill.load_session("session.pkl")
assert counter == 41
assert settings == {"mode": "fast", "sizes": [1, 2, 3]} and same_settings is settings
assert square(7) == 49
assert total([1, 2]) == 9 + 41
factor = 10                     # functions read the live namespace
assert scale(2) == 20
assert isinstance(alice, Account) and all(isinstance(a, Account) for a in accounts)
assert accounts[0] is alice and alice.interest() == 50.0
assert Account("carol", 4).interest() == 2.0
assert scale.__globals__ is globals() and Account.interest.__globals__ is globals()
assert math.sqrt(9) == 3.0
log.seek(0)
assert log.read() == "first line\\n"
assert guard.acquire(blocking=False)
assert not held.acquire(blocking=False)
assert counts["a"] == 2
assert "conn" not in globals()
print("restored")
"""


def test_session_round_trip_in_fresh_interpreter(tmp_path):
    dumped = _subproc.script(SCRIPT, cwd=tmp_path).stdout.decode()
    assert "left 1 entry out of the session of '__main__'" in dumped
    assert "conn (socket.socket): UnpicklableError: cannot pickle 'socket' object" in dumped
    assert _subproc.script(CHECK, cwd=tmp_path).stdout.decode().strip() == "restored"


def test_session_info_lists_entries_without_loading(tmp_path):
    _subproc.script(SCRIPT, cwd=tmp_path)
    info = turbodill.session_info(tmp_path / "session.pkl")
    assert info.module == "__main__"
    assert info.python == tuple(sys.version_info[:3])
    assert info.format == 1 and info.protocol == 5
    entries = {e.name: e for e in info.entries}
    assert entries["square"].type == "function" and entries["square"].kind == "value"
    assert entries["alice"].type == "__main__.Account"
    assert entries["math"].kind == "module"
    assert info.skipped == [("conn", "socket.socket", "UnpicklableError: cannot pickle 'socket' object")]
    assert info.size == os.path.getsize(tmp_path / "session.pkl")
    # the CLI, as a user runs it
    out = _subproc.python(["-m", "turbodill", "session-info", "session.pkl", "--json"], cwd=tmp_path).stdout
    listed = json.loads(out)
    assert [e["name"] for e in listed["entries"]] == [e.name for e in info.entries]
    table = _subproc.python(["-m", "turbodill", "session-info", "session.pkl"], cwd=tmp_path).stdout.decode()
    assert "alice" in table and "__main__.Account" in table and "left out when saved" in table


def _session_file(entries, *, python=None, module="__main__", format=1):
    """A session file built by hand around the given raw payloads."""
    header = {
        "format": format,
        "python": python or tuple(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "turbodill": _native.__version__,
        "module": module,
        "created": 0.0,
        "protocol": 5,
        "entries": [{"name": n, "type": "x", "kind": "value", "size": len(p)} for n, p in entries],
        "skipped": [],
    }
    return _native._session_pack_header(header) + b"".join(p for _, p in entries)


class Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_session_info_and_cli_never_execute_payloads(tmp_path):
    marker = tmp_path / "executed"
    evil = pickle.dumps(Touch(str(marker)))
    missing = b"\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00\x8c\x0fno_such_module_x\x8c\x01f\x93."
    path = tmp_path / "evil.pkl"
    path.write_bytes(_session_file([("evil", evil), ("missing", missing)]))
    info = turbodill.session_info(path)
    assert [e.name for e in info.entries] == ["evil", "missing"]
    proc = _subproc.python(["-m", "turbodill", "session-info", path], check=False)
    assert proc.returncode == 0 and b"evil" in proc.stdout
    assert not marker.exists()
    assert "no_such_module_x" not in sys.modules


def test_load_reports_failed_entries_and_restores_the_rest(tmp_path):
    good = pickle.dumps([1, 2, 3])
    missing = pickle.dumps(types.SimpleNamespace).replace(b"types", b"nomod")
    path = tmp_path / "s.pkl"
    path.write_bytes(_session_file([("broken", missing), ("kept", good)]))
    with pytest.warns(SessionWarning, match=r"1 entry of session .* could not be loaded:\n  broken") as caught:
        namespace = turbodill.load_module_asdict(path)
    assert namespace["kept"] == [1, 2, 3] and "broken" not in namespace
    assert isinstance(caught[0].message.entries[0][2], ModuleNotFoundError)
    with pytest.raises(ModuleNotFoundError) as raised:
        turbodill.load_module_asdict(path, strict=True)
    assert "in session entry 'broken'" in raised.value.__notes__[0]


def test_failed_entry_leaves_no_reference_behind(tmp_path):
    """An entry that fails after memoizing an object shared with a later
    entry: the later entry must carry the object itself."""
    script = """
    import socket, turbodill, warnings
    shared = [1, 2]
    bad = [shared, socket.socket()]
    del shared
    good = bad[0]
    more = {"again": good}
    warnings.simplefilter("ignore")
    turbodill.dump_session("s.pkl")
    """
    _subproc.script(script, cwd=tmp_path)
    check = """
    import turbodill
    turbodill.load_session("s.pkl")
    assert good == [1, 2] and more["again"] is good and "bad" not in globals()
    """
    _subproc.script(check, cwd=tmp_path)


def test_strict_raises_and_keeps_the_old_file(tmp_path):
    (tmp_path / "s.pkl").write_bytes(b"old contents")
    script = """
    import socket, turbodill
    ok = 1
    conn = socket.socket()
    try:
        turbodill.dump_session("s.pkl", strict=True)
    except turbodill.PicklingError as exc:
        assert "in session entry 'conn'" in exc.__notes__[-1], exc.__notes__
        print("raised")
    """
    assert _subproc.script(script, cwd=tmp_path).stdout.strip() == b"raised"
    assert (tmp_path / "s.pkl").read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["s.pkl"]


@pytest.mark.parametrize("moment", ["while pickling", "after writing, before the rename"])
def test_killed_dump_leaves_the_previous_session_intact(tmp_path, moment):
    _subproc.script("import turbodill\nversion = 1\nturbodill.dump_session('s.pkl')", cwd=tmp_path)
    before = (tmp_path / "s.pkl").read_bytes()
    killer = (
        """
        class Killer:
            def __reduce__(self):
                os.kill(os.getpid(), signal.SIGKILL)
        k = Killer()
        """
        if moment == "while pickling"
        else "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)"
    )
    script = f"""
import os, signal, turbodill
version = 2
big = bytes(50_000_000)
{textwrap.dedent(killer)}
turbodill.dump_session("s.pkl")
"""
    proc = _subproc.script(script, cwd=tmp_path, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "s.pkl").read_bytes() == before
    assert turbodill.load_module_asdict(tmp_path / "s.pkl")["version"] == 1


def test_files_are_private_and_replaced_whole(tmp_path):
    path = tmp_path / "s.pkl"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    module = types.ModuleType("state")
    module.value = 5
    assert turbodill.dump_module(path, module=module) == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["s.pkl"]
    assert turbodill.load_module_asdict(path)["value"] == 5


def test_symlinks_are_refused_for_writing_and_reading(tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(b"do not touch")
    link = tmp_path / "link.pkl"
    link.symlink_to(target)
    module = types.ModuleType("state")
    with pytest.raises(OSError, match="symbolic link"):
        turbodill.dump_module(link, module=module)
    assert target.read_bytes() == b"do not touch" and link.is_symlink()
    real = tmp_path / "real.pkl"
    turbodill.dump_module(real, module=module)
    os.unlink(link)
    link.symlink_to(real)
    for load in (turbodill.load_module_asdict, turbodill.session_info, turbodill.load_session):
        with pytest.raises(OSError, match="symbolic link"):
            load(link)


def test_other_python_version_is_refused_before_any_entry_runs(tmp_path):
    marker = tmp_path / "executed"
    other = (sys.version_info[0], sys.version_info[1] - 1, 0)
    path = tmp_path / "old.pkl"
    path.write_bytes(_session_file([("evil", pickle.dumps(Touch(str(marker))))], python=other))
    for load in (turbodill.load_module_asdict, turbodill.load_session):
        with pytest.raises(SessionVersionError, match=r"written by cpython 3\.\d+\.0 .*minor version"):
            load(path)
    assert not marker.exists()
    assert turbodill.session_info(path).python == other  # still readable


def test_corrupt_files_are_refused(tmp_path):
    module = types.ModuleType("state")
    module.data = list(range(100))
    buffer = io.BytesIO()
    turbodill.dump_module(buffer, module=module)
    data = buffer.getvalue()
    for cut in (0, 5, 12, 40, len(data) - 1):
        with pytest.raises(SessionError):
            turbodill.load_module_asdict(io.BytesIO(data[:cut]))
    with pytest.raises(SessionError, match="bad signature"):
        turbodill.session_info(io.BytesIO(b"\x80\x05N."))
    newer = _session_file([("x", pickle.dumps(1))], format=2)
    with pytest.raises(SessionError, match="format-2 session, written by a newer turbodill"):
        turbodill.load_module_asdict(io.BytesIO(newer))


def test_file_objects_and_modules_other_than_main(tmp_path):
    module = types.ModuleType("runtime_state")
    exec(
        textwrap.dedent(
            """
            base = 2
            def power(n):
                return base ** n
            class Box:
                def __init__(self, v): self.v = v
            box = Box(power(3))
            """
        ),
        module.__dict__,
    )
    buffer = io.BytesIO()
    assert turbodill.dump_module(buffer, module=module) is None
    buffer.seek(0)
    loaded = turbodill.load_module(buffer)  # not importable: a new module
    assert isinstance(loaded, types.ModuleType) and loaded is not module
    assert loaded.power(4) == 16 and loaded.power.__globals__ is loaded.__dict__
    assert loaded.box.v == 8 and isinstance(loaded.box, loaded.Box)
    buffer.seek(0)
    target = types.ModuleType("elsewhere")
    assert turbodill.load_module(buffer, module=target) is None
    assert target.power(2) == 4


def test_refimported_reimports_names_from_their_modules(tmp_path):
    script = """
    import turbodill
    from os import environ
    from logging import root
    turbodill.dump_module("s.pkl", refimported=True)
    turbodill.dump_module("copied.pkl")
    """
    _subproc.script(script, cwd=tmp_path)
    kinds = {e.name: e.kind for e in turbodill.session_info(tmp_path / "s.pkl").entries}
    assert kinds["environ"] == kinds["root"] == "import"
    check = """
    import os, logging, turbodill
    os.environ["ADDED_LATER"] = "1"
    turbodill.load_session("s.pkl")
    assert environ is os.environ and root is logging.root
    ns = turbodill.load_module_asdict("copied.pkl")
    assert ns["environ"] is not os.environ  # a copy without refimported
    """
    _subproc.script(check, cwd=tmp_path)


def test_default_path_is_per_user_and_private(tmp_path):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    script = """
    import turbodill
    answer = 42
    print(turbodill.dump_session())
    """
    printed = _subproc.script(script, cwd=tmp_path, env=env).stdout.decode().strip()
    assert printed == str(tmp_path / "state" / "turbodill" / "session.pkl")
    assert stat.S_IMODE(os.stat(tmp_path / "state" / "turbodill").st_mode) == 0o700
    check = "import turbodill\nturbodill.load_session()\nassert answer == 42"
    _subproc.script(check, cwd=tmp_path, env=env)


def test_load_module_asdict_leaves_live_modules_alone(tmp_path):
    module = types.ModuleType("state_for_asdict")
    module.x = 1
    path = tmp_path / "s.pkl"
    turbodill.dump_module(path, module=module)
    sys.modules["state_for_asdict"] = module
    try:
        module.x, module.y = 2, 3
        updated = turbodill.load_module_asdict(path, update=True)
        plain = turbodill.load_module_asdict(path)
    finally:
        del sys.modules["state_for_asdict"]
    assert (module.x, module.y) == (2, 3)
    assert updated["x"] == 1 and updated["y"] == 3 and updated["__session__"] == str(path)
    assert plain["x"] == 1 and "y" not in plain


def test_dill_keyword_names_are_accepted(tmp_path):
    module = types.ModuleType("kw_state")
    module.v = [1]
    path = tmp_path / "s.pkl"
    turbodill.dump_session(path, main=module, byref=False, recurse=True)
    target = types.ModuleType("kw_target")
    turbodill.load_session(path, main=target)
    assert target.v == [1]
    with pytest.raises(TypeError, match="unexpected keyword"):
        turbodill.dump_module(path, module=module, bogus=1)


LOAD_REPORTING_FAILURES = """
import warnings, turbodill
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    turbodill.load_session("s.pkl")
[warning] = caught
message = str(warning.message)
"""


def _load_without_module(tmp_path, source, dump, check):
    """`dump` a session in a fresh interpreter that can import `vanishing`
    (`source`), then run `check` in one that cannot, after loading it."""
    (tmp_path / "vanishing.py").write_text(source)
    _subproc.script(dump, cwd=tmp_path)
    os.unlink(tmp_path / "vanishing.py")
    _subproc.script(LOAD_REPORTING_FAILURES + textwrap.dedent(check), cwd=tmp_path)


def test_entries_after_a_failed_one_keep_their_shared_objects(tmp_path):
    dump = """
    import vanishing, turbodill
    shared = {"k": [1, 2]}
    broken = (shared, vanishing.Thing())
    after = [shared, shared["k"]]
    turbodill.dump_session("s.pkl")
    """
    check = """
    assert "broken (tuple): ModuleNotFoundError: No module named 'vanishing'" in message, message
    assert "vanishing" not in globals()  # the module entry failed too, and was reported
    assert after[0] is shared and after[1] is shared["k"] and shared == {"k": [1, 2]}
    assert "broken" not in globals()
    """
    _load_without_module(tmp_path, "class Thing:\n    pass\n", dump, check)


def test_entries_after_a_failed_one_do_not_depend_on_its_incidental_objects(tmp_path):
    """What entries share only by accident (equal strs, a global such as a
    class or the function type, an imported module, the code constructor of
    by-value functions) is written again in each entry: a loader that failed
    on the first entry that had them still loads the rest."""
    source = (
        "import collections, json\n"
        "class Thing:\n"
        "    def __init__(self):\n"
        "        self.label, self.rows = 'kept', collections.OrderedDict(a=1)\n"
        "        self.codec, self.fn = json, lambda v: v\n"
    )
    dump = """
    import collections, json, vanishing, turbodill
    broken = vanishing.Thing()
    labels = {"label": "kept", "rows": 2}
    ordered = collections.OrderedDict(b=2)
    codec = json
    scale = lambda v: v * 3
    def wrap(v):
        return collections.OrderedDict(v=scale(v))
    turbodill.dump_session("s.pkl")
    """
    check = """
    import json
    assert "2 entries" in message and "broken (vanishing.Thing)" in message, message
    assert labels == {"label": "kept", "rows": 2}
    assert list(ordered.items()) == [("b", 2)] and codec is json
    assert scale(2) == 6 and wrap(1) == {"v": 3}
    """
    _load_without_module(tmp_path, source, dump, check)


def test_a_module_registered_by_value_stays_shared_between_entries(monkeypatch):
    """Modules by reference are written again in each entry; one pickled by
    value is one object, which a later entry fetches from the memo."""
    import pickletools

    shared = types.ModuleType("registered_between_entries")
    shared.x = 1
    monkeypatch.setitem(sys.modules, shared.__name__, shared)
    turbodill.register_pickle_by_value(shared)
    try:
        host = types.ModuleType("host")
        first, second = _native._session_pickle_entries(host, [("a", shared), ("b", shared)], 4)
    finally:
        turbodill.unregister_pickle_by_value(shared)
    assert b"registered_between_entries" in first
    ops = [op.name for op, _, _ in pickletools.genops(second)]
    assert ops == ["PROTO", "BINGET", "STOP"], ops


def test_every_entry_spells_out_the_persistent_ids():
    """The module's and namespace's persistent ids are written whole in every
    entry, never fetched from the memo of an earlier entry (which the loader
    may have skipped), and are the ids the loader resolves."""
    import pickletools

    module = types.ModuleType("spelled")
    exec("def first():\n    return base\ndef second():\n    return base + 1\nbase = 41\n", module.__dict__)
    entries = [(name, module.__dict__[name]) for name in ("first", "second")] + [("itself", module)]
    pickles = _native._session_pickle_entries(module, entries, 4)
    expected = {turbodill.session._NAMESPACE_PID, turbodill.session._MODULE_PID}
    assert expected == {"turbodill.session:namespace", "turbodill.session:module"}
    for data in pickles:
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data) if op.name not in ("MEMOIZE", "PUT", "BINPUT")]
        ids = [ops[i - 1] for i, (name, _) in enumerate(ops) if name == "BINPERSID"]
        assert ids and all(name == "SHORT_BINUNICODE" and arg in expected for name, arg in ids), ops


def test_ipython_shell_state_is_not_saved():
    """Names IPython keeps in the user namespace belong to the running shell."""
    module = types.ModuleType("__main__")

    def get_ipython():
        return None

    get_ipython.__module__ = "IPython.core.interactiveshell"
    module.__dict__.update(get_ipython=get_ipython, In=["", "x = 1"], Out={1: 1}, _i1="x = 1", _1=1, _="", x=1)
    buffer = io.BytesIO()
    turbodill.dump_module(buffer, module=module)
    buffer.seek(0)
    assert [e.name for e in turbodill.session_info(buffer).entries] == ["__doc__", "x"]
    plain = types.ModuleType("plain")
    plain.__dict__.update(In=[1], _1=2)  # not IPython's: ordinary variables
    buffer = io.BytesIO()
    turbodill.dump_module(buffer, module=plain)
    buffer.seek(0)
    assert [e.name for e in turbodill.session_info(buffer).entries] == ["__doc__", "In", "_1"]


# ---- signed sessions ----------------------------------------------------------

SIGNED_SCRIPT = """
import turbodill
base = 5
def add_base(v):
    return v + base
class Point:
    def __init__(self, x):
        self.x = x
origin = Point(0)
turbodill.dump_session("signed.pkl", key=b"k1")
"""

SIGNED_CHECK = """
import turbodill
turbodill.load_session("signed.pkl", key=[b"k0", b"k1"])  # rotation: any accepted key
assert add_base(1) == 6 and isinstance(origin, Point) and origin.x == 0
print("restored")
"""


def test_signed_session_round_trip_in_fresh_interpreter(tmp_path):
    _subproc.script(SIGNED_SCRIPT, cwd=tmp_path)
    assert _subproc.script(SIGNED_CHECK, cwd=tmp_path).stdout.decode().strip() == "restored"
    path = tmp_path / "signed.pkl"
    info = turbodill.session_info(path, key=b"k1")
    assert info.signed and info.size == os.path.getsize(path)
    assert [e.name for e in info.entries if not e.name.startswith("__")] == [
        "turbodill",
        "base",
        "add_base",
        "Point",
        "origin",
    ]
    assert not turbodill.session_info(_unsigned_session(tmp_path)).signed
    namespace = turbodill.load_module_asdict(path, key="k1")  # str keys are their UTF-8 bytes
    assert namespace["add_base"](2) == 7


def _unsigned_session(tmp_path):
    module = types.ModuleType("plain_state")
    module.value = 1
    return turbodill.dump_module(tmp_path / "unsigned.pkl", module=module)


def _signature_error(call):
    with pytest.raises(turbodill.SignatureError) as raised:
        call()
    return str(raised.value)


def test_signed_and_unsigned_sessions_are_refused_the_other_way_with_the_payload_errors(tmp_path):
    _subproc.script(SIGNED_SCRIPT, cwd=tmp_path)
    signed, unsigned = tmp_path / "signed.pkl", _unsigned_session(tmp_path)
    without_key = _signature_error(lambda: turbodill.loads(turbodill.dumps(1, key=b"k1")))
    with_key = _signature_error(lambda: turbodill.loads(turbodill.dumps(1), key=b"k1"))
    loaders = (turbodill.load_session, turbodill.load_module, turbodill.load_module_asdict, turbodill.session_info)
    for load in loaders:
        assert _signature_error(lambda: load(signed)) == without_key
        assert _signature_error(lambda: load(unsigned, key=b"k1")) == with_key
        assert "not among the accepted keys" in _signature_error(lambda: load(signed, key=b"other"))
    assert "left" not in sys.modules["__main__"].__dict__  # nothing was loaded into the caller's module


def test_every_byte_of_a_signed_session_is_checked_before_any_entry_runs(tmp_path):
    marker = tmp_path / "executed"
    module = types.ModuleType("evil_state")
    module.evil = Touch(str(marker))
    buffer = io.BytesIO()
    turbodill.dump_module(buffer, module=module, key=b"k")
    data = buffer.getvalue()
    envelope = 52  # magic, version, algorithm, key id, length, tag
    header_end = envelope + _native._session_header_size(data[envelope : envelope + _native._SESSION_PREFIX_SIZE])
    # each field of the envelope, the session's header (module name, entry sizes...) and the entry
    for offset in sorted({*range(0, envelope, 3), *range(envelope, header_end, 7), *range(header_end, len(data))}):
        changed = bytearray(data)
        changed[offset] ^= 0x20
        for load in (turbodill.load_module_asdict, turbodill.session_info):
            with pytest.raises(turbodill.SignatureError):
                load(io.BytesIO(changed), key=b"k")
    for cut in (1, envelope, header_end, len(data) - 1):
        with pytest.raises(turbodill.SignatureError):
            turbodill.load_module_asdict(io.BytesIO(data[:cut]), key=b"k")
    with pytest.raises(turbodill.SignatureError, match="truncated or extended"):
        turbodill.load_module_asdict(io.BytesIO(data + b"."), key=b"k")
    assert not marker.exists()
    turbodill.load_module_asdict(io.BytesIO(data), key=b"k")  # the intact file does run it
    assert marker.exists()


def test_cli_session_info_of_a_signed_session(tmp_path):
    _subproc.script(SIGNED_SCRIPT, cwd=tmp_path)
    cli = ["-m", "turbodill", "session-info", "signed.pkl"]
    refused = _subproc.python(cli, cwd=tmp_path, check=False)
    assert refused.returncode == 2 and b"give its key with --key-env VAR" in refused.stderr
    env = dict(os.environ, SESSION_KEY="k1")
    shown = _subproc.python([*cli, "--key-env", "SESSION_KEY"], cwd=tmp_path, env=env)
    assert shown.stdout.startswith(b"signed session of module '__main__'") and b"add_base" in shown.stdout
    wrong = _subproc.python(
        [*cli, "--key-env", "SESSION_KEY"], cwd=tmp_path, env={**env, "SESSION_KEY": "k2"}, check=False
    )
    assert wrong.returncode == 2 and b"not among the accepted keys" in wrong.stderr


# ---- temporary files of killed dumps ---------------------------------------


def test_temp_file_of_a_killed_dump_is_removed_by_the_next_dump(tmp_path):
    _subproc.script("import turbodill\nversion = 1\nturbodill.dump_session('s.pkl')", cwd=tmp_path)
    script = """
    import os, signal, turbodill
    version = 2
    print(os.getpid(), flush=True)
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed with the data written, before the rename
    turbodill.dump_session("s.pkl")
    """
    killed = _subproc.script(script, cwd=tmp_path, check=False)
    assert killed.returncode == -signal.SIGKILL
    [left] = [name for name in os.listdir(tmp_path) if name != "s.pkl"]
    assert left.startswith(".s.pkl.") and left.endswith(".tmp")
    pid, host = re.fullmatch(r"\.s\.pkl\.(\d+)@(.+)\.[^.]+\.tmp", left).groups()
    assert int(pid) == int(killed.stdout) and host
    # other temporary files of this target: a live writer's (this test's), another host's, another target's
    live = f".s.pkl.{os.getpid()}@{host}.abcdefgh.tmp"
    elsewhere = f".s.pkl.{pid}@not-{host}.abcdefgh.tmp"
    other_target = f".t.pkl.{pid}@{host}.abcdefgh.tmp"
    for name in (live, elsewhere, other_target):
        (tmp_path / name).write_bytes(b"partial")
    _subproc.script("import turbodill\nversion = 3\nturbodill.dump_session('s.pkl')", cwd=tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(["s.pkl", live, elsewhere, other_target])
    assert turbodill.load_module_asdict(tmp_path / "s.pkl")["version"] == 3
