"""Safe loading: signed payloads, restricted loading, static inspection.

Every refusal is checked to happen before anything runs: the payloads here
would create a file when loaded, and the file must not exist afterwards
(a plain load of the same payload creates it, proving the payload is live).
"""

import collections
import copyreg
import datetime
import decimal
import io
import ipaddress
import json
import os
import pathlib
import pickle
import pickletools
import random
import textwrap
import tracemalloc
import types
import uuid
import zoneinfo

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import _subproc
import turbodill
from turbodill import ForbiddenGlobalError, InspectError, SignatureError, UnsafePickleError

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def stack_global(module, name):
    """Protocol 4 opcodes pushing the global ``module.name``."""
    strings = (bytes((0x8C, len(text))) + text.encode() for text in (module, name))
    return b"\x80\x04" + b"".join(strings) + b"\x93"


# Where pickle finds pathlib's classes: pathlib._local from 3.13.
PATH_MODULE = pathlib.Path.__module__


def touch_payloads(path, protocol=4):
    """Pickles that create ``path`` when loaded, each by another route."""
    return {
        "os.system": pickle.dumps(Reduce(os.system, f"touch {path}"), protocol),
        "open": pickle.dumps(Reduce(open, str(path), "w"), protocol),
        "Path.touch": pickle.dumps(Reduce(pathlib.Path.touch, pathlib.Path(path)), protocol),
        "Path.write_text": pickle.dumps(Reduce(pathlib.Path.write_text, pathlib.Path(path), "x"), protocol),
    }


def realistic_data():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    return {
        "when": [
            datetime.datetime(2026, 11, 22, 9, 30, tzinfo=datetime.timezone.utc),
            datetime.datetime(2026, 11, 22, 9, 30, tzinfo=paris),
            datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-5), "EST")),
            datetime.date(2026, 2, 3),
            datetime.time(4, 5, 6, tzinfo=datetime.timezone.utc),
            datetime.timedelta(days=3, seconds=7),
        ],
        "money": decimal.Decimal("-1234.5600"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "bytes": [b"", b"\x00\xffbinary", bytearray(b"mutable"), bytearray()],
        "sets": [{1, 2, 3}, frozenset({"a", "b"}), set(), frozenset()],
        "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
        "counts": collections.Counter("mississippi"),
        "queue": collections.deque([1, 2, 3], maxlen=5),
        "groups": collections.defaultdict(list, {"x": [1], "y": []}),
        "tallies": collections.defaultdict(int, {"k": 3}),
        "net": [
            ipaddress.ip_address("10.1.2.3"),
            ipaddress.ip_network("2001:db8::/32"),
            ipaddress.ip_interface("192.168.0.1/24"),
        ],
        "paths": [pathlib.PurePosixPath("/srv/a"), pathlib.Path("/tmp/b"), pathlib.PureWindowsPath("C:/x")],
        "numbers": [1, -(2**80), 1.5, float("inf"), 3 + 4j, True, None],
        "text": ["", "é\n\\u1234", "x" * 300],
        "nested": [{"a": (1, [2, {3: (4,)}])}, ((),)],
    }


# ---- signed payloads -------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_signed_round_trip(protocol):
    obj = realistic_data()
    data = turbodill.dumps(obj, protocol, key=b"secret")
    assert data.startswith(b"\xffTDSIG\x01\x01")
    assert turbodill.loads(data, key=b"secret") == obj
    assert turbodill.loads(data, key="secret") == obj  # str keys are their UTF-8
    assert turbodill.loads(data, key=b"secret", allow="data") == obj
    assert turbodill.inspect(data).signed


def test_signed_dump_and_load_stream_envelopes_one_by_one():
    f = io.BytesIO()
    for i in range(3):
        turbodill.dump({"n": i}, f, key="k")
    f.write(b"tail")
    f.seek(0)
    assert [turbodill.load(f, key="k") for _ in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert f.read() == b"tail"


def test_every_modified_byte_and_every_truncation_is_rejected(tmp_path):
    target = tmp_path / "created"
    data = turbodill.dumps(Reduce(os.system, f"touch {target}"), key=b"k")
    for i in range(len(data)):
        for value in range(256):
            if value == data[i]:
                continue
            tampered = data[:i] + bytes((value,)) + data[i + 1 :]
            with pytest.raises(SignatureError):
                turbodill.loads(tampered, key=b"k")
    for end in range(len(data)):
        with pytest.raises(SignatureError):
            turbodill.loads(data[:end], key=b"k")
        with pytest.raises((SignatureError, EOFError)):
            turbodill.load(io.BytesIO(data[:end]), key=b"k")
    with pytest.raises(SignatureError):
        turbodill.loads(data + b"\x00", key=b"k")
    assert not target.exists()
    turbodill.loads(data, key=b"k")  # the payload is live
    assert target.exists()


def test_wrong_key_and_key_rotation(tmp_path):
    target = tmp_path / "created"
    data = turbodill.dumps(Reduce(open, str(target), "w"), key="old")
    with pytest.raises(SignatureError, match="not among the accepted keys"):
        turbodill.loads(data, key="new")
    with pytest.raises(SignatureError):
        turbodill.loads(data, key=["new", "other"])
    assert not target.exists()
    rotated = turbodill.dumps([1], key="new")
    for accepted in (["new", "old"], ("old", b"new"), iter(["new", "old"])):
        accepted = list(accepted)
        assert turbodill.loads(rotated, key=accepted) == [1]
    assert turbodill.loads(turbodill.dumps([2], key="old"), key=["new", "old"]) == [2]


def test_signature_check_is_needed_both_ways(tmp_path):
    target = tmp_path / "created"
    unsigned = pickle.dumps(Reduce(os.system, f"touch {target}"))
    signed = turbodill.dumps(Reduce(os.system, f"touch {target}"), key="k")
    with pytest.raises(SignatureError, match="not a signed payload"):
        turbodill.loads(unsigned, key="k")
    with pytest.raises(SignatureError, match="not a signed payload"):
        turbodill.load(io.BytesIO(unsigned), key="k")
    with pytest.raises(SignatureError, match="pass key="):
        turbodill.loads(signed)
    with pytest.raises(SignatureError, match="pass key="):
        turbodill.load(io.BytesIO(signed))
    with pytest.raises(SignatureError, match="pass key="):
        turbodill.loads(signed, allow="data")
    with pytest.raises(SignatureError, match="pass key="):
        turbodill.load(io.BytesIO(signed), allow="data")
    with pytest.raises(pickle.UnpicklingError):  # the stdlib refuses the envelope at its first byte
        pickle.loads(signed)
    assert not target.exists()


def test_key_and_allow_combine(tmp_path):
    target = tmp_path / "created"
    data = turbodill.dumps(Reduce(os.system, f"touch {target}"), key="k")
    with pytest.raises(ForbiddenGlobalError, match="system"):
        turbodill.loads(data, key="k", allow="data")
    assert not target.exists()


def test_keys_are_checked():
    for bad, error in (
        (b"", ValueError),
        ("", ValueError),
        ([], ValueError),
        (3, TypeError),
        ([b"k", None], TypeError),
    ):
        with pytest.raises(error):
            turbodill.dumps(1, key=bad) if not isinstance(bad, list) else turbodill.loads(
                turbodill.dumps(1, key="k"), key=bad
            )


def test_envelope_fields_are_covered_by_the_tag():
    data = bytearray(turbodill.dumps("x", key="k"))
    data[6] = 2
    with pytest.raises(SignatureError, match="version 2"):
        turbodill.loads(bytes(data), key="k")
    # A declared length of 2**60: the file is read a chunk at a time, never
    # asked for (and so never made to allocate) that many bytes at once.
    huge = turbodill.dumps("x", key="k")[:12] + (1 << 60).to_bytes(8, "little")
    file = ReadSizes(huge + bytes(100))
    with pytest.raises(SignatureError, match="truncated"):
        turbodill.load(file, key="k")
    assert max(file.sizes) <= 1 << 20, file.sizes


class ReadSizes(io.BytesIO):
    """A binary file that records the size of each read asked of it."""

    def __init__(self, data):
        super().__init__(data)
        self.sizes = []

    def read(self, size=-1):
        self.sizes.append(size)
        return super().read(size)


# ---- restricted loading ----------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forbidden_globals_are_named_and_nothing_runs(tmp_path, protocol):
    target = tmp_path / "created"
    for route, data in touch_payloads(target, protocol).items():
        for load in (
            lambda: turbodill.loads(data, allow="data"),
            lambda: turbodill.load(io.BytesIO(data), allow="data"),
            lambda: turbodill.RestrictedUnpickler(io.BytesIO(data), allow=["data", "pathlib.Path"]).load(),
        ):
            with pytest.raises(ForbiddenGlobalError) as info:
                load()
            assert info.value.name in str(info.value)
            assert info.value.name.split(".")[-1] in ("system", "open", "touch", "write_text"), route
        assert not target.exists(), route
    turbodill.loads(touch_payloads(target, protocol)["Path.touch"])
    assert target.exists()


def test_refused_before_any_opcode_runs(tmp_path):
    """A forbidden global late in the payload: the allowed call before it
    does not run either."""
    target = tmp_path / "created"
    data = pickle.dumps([Reduce(pathlib.Path.mkdir, pathlib.Path(target)), Reduce(os.system, "true")], 4)
    with pytest.raises(ForbiddenGlobalError, match="system"):
        turbodill.loads(data, allow=["data", f"{PATH_MODULE}.Path.mkdir"])
    assert not target.exists()


def test_forbidden_modules_are_not_imported():
    script = textwrap.dedent(
        r"""
        import sys, turbodill
        payloads = [
            b"ccolorsys\nrgb_to_hsv\n(K\x01K\x01K\x01tR.",
            b"\x80\x04\x8c\x08colorsys\x94\x8c\nrgb_to_hsv\x94\x93K\x01K\x01K\x01\x87R.",
        ]
        for data in payloads:
            for attempt in (lambda: turbodill.loads(data, allow="data"),
                            lambda: turbodill.loads(data, allow=["data", "colorsys.hls_to_rgb"])):
                try:
                    attempt()
                except turbodill.ForbiddenGlobalError as e:
                    assert e.name == "colorsys.rgb_to_hsv", e
                else:
                    raise AssertionError("loaded")
            report = turbodill.inspect(data)
            assert report.globals == {"colorsys.rgb_to_hsv": 1}, report
            assert not report.data_only
        assert "colorsys" not in sys.modules
        print("ok")
        """
    )
    out = _subproc.code(script, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_extension_codes_do_not_bypass_the_allowlist(tmp_path):
    target = tmp_path / "created"
    code = 0x7FF0
    copyreg.add_extension("posix", "system", code)
    try:
        # An unrestricted load puts os.system in _pickle's extension cache,
        # which the C unpickler serves without calling find_class.
        assert pickle.loads(b"\x80\x02\x83\xf0\x7f.") is os.system
        command = str(target).encode()
        data = b"\x80\x02\x83\xf0\x7fB" + len(command).to_bytes(4, "little") + command + b"\x85R."
        data = (
            b"\x80\x02\x83\xf0\x7fX" + len(b"touch " + command).to_bytes(4, "little") + b"touch " + command + b"\x85R."
        )
        for load in (
            lambda: turbodill.loads(data, allow="data"),
            lambda: turbodill.RestrictedUnpickler(io.BytesIO(data), allow="data").load(),
        ):
            with pytest.raises(ForbiddenGlobalError, match="posix.system"):
                load()
        report = turbodill.inspect(data)
        assert report.extension_codes == {code: "posix.system"}
        assert report.globals == {"posix.system": 1} and report.callables == {"posix.system": 1}
        assert not target.exists()
    finally:
        copyreg.remove_extension("posix", "system", code)
    with pytest.raises(ForbiddenGlobalError, match="not registered"):
        turbodill.loads(data, allow="data")
    assert not turbodill.inspect(data).statically_resolvable


def test_getattr_only_resolves_allowed_attributes(tmp_path):
    target = tmp_path / "created"
    # getattr(Path, "write_text")(PosixPath(target), "x"), protocol 2.
    data = pickle.dumps(Reduce(pathlib.Path.write_text, pathlib.PosixPath(target), "x"), 2)
    assert b"getattr" in data
    report = turbodill.inspect(data)
    write_text = f"{PATH_MODULE}.Path.write_text"
    assert write_text in report.globals and "builtins.getattr" not in report.callables
    with pytest.raises(ForbiddenGlobalError, match=write_text):
        turbodill.loads(data, allow="data")
    # getattr with operands known only at load time is a call of getattr.
    dynamic = b"cbuiltins\ngetattr\n(cpathlib\nPosixPath\ncbuiltins\nstr\n(Vwrite_text\ntRtR."
    with pytest.raises(ForbiddenGlobalError, match="builtins.getattr"):
        turbodill.loads(dynamic, allow=["data", "builtins.str"])
    assert not target.exists()
    # The guarded getattr at load time: only allowed names, even if the
    # static check were passed.
    u = turbodill.RestrictedUnpickler(io.BytesIO(), allow="data")
    path_cls = u.find_class("pathlib", "PosixPath")
    with pytest.raises(ForbiddenGlobalError):
        u.find_class("builtins", "getattr")(path_cls, "write_text")
    with pytest.raises(ForbiddenGlobalError):
        u.find_class("builtins", "getattr")(os, "system")


def test_globals_cannot_be_modified():
    ordered_repr = collections.OrderedDict.__repr__
    build = b"ccollections\nOrderedDict\n}V__repr__\ncbuiltins\nstr\nsb."
    with pytest.raises(ForbiddenGlobalError, match="modify the global 'collections.OrderedDict'"):
        turbodill.loads(build, allow="data")
    setitem = b"cos\nenviron\nVTURBODILL_TEST\nVx\ns."
    with pytest.raises(ForbiddenGlobalError, match="modify the global 'os.environ'"):
        turbodill.loads(setitem, allow=["data", "os.*"])
    assert "TURBODILL_TEST" not in os.environ and collections.OrderedDict.__repr__ is ordered_repr


def test_calls_must_be_of_named_allowed_globals():
    # STACK_GLOBAL on strings a call makes: not statically resolvable.
    dynamic = stack_global("posixpath", "join") + b"\x8c\x01a\x8c\x01b\x86R\x8c\x01x\x93."
    with pytest.raises(ForbiddenGlobalError, match="not statically resolvable"):
        turbodill.loads(dynamic, allow=["posixpath.*", "a.*"])
    assert not turbodill.inspect(dynamic).statically_resolvable
    # Calling what a call returned.
    called_result = b"cbuiltins\nset\n)R)R."
    with pytest.raises(ForbiddenGlobalError, match="<dynamic>"):
        turbodill.loads(called_result, allow="data")
    # The data preset's value-only entries: int(Decimal("1e999999999")) would
    # build a 10**999999999. Refused before anything runs: not a global is
    # looked up (which every call needs first).
    int_call = b"cbuiltins\nint\n(cdecimal\nDecimal\n(V1e999999999\ntRtR."
    with pytest.raises(ForbiddenGlobalError, match="only as a value"):
        NoGlobalsResolved(io.BytesIO(int_call), allow="data").load()
    with pytest.raises(ForbiddenGlobalError, match="only as a value"):
        turbodill.loads(int_call, allow="data")


class NoGlobalsResolved(turbodill.RestrictedUnpickler):
    """Fails the test at the first global the load looks up, before it is
    imported or called."""

    def find_class(self, module, name):
        raise AssertionError(f"the load looked up {module}.{name}: the payload was not refused before it ran")


def test_guarded_callables_refuse_their_dangerous_forms():
    for data in (
        b"cbuiltins\nbytearray\n(J\x00\x00\x00\x40tR.",  # bytearray(2**30)
        b"c__builtin__\nbytes\n(L100000000000L\ntR.",  # bytes(10**11), protocol 0
        b"c_codecs\nencode\n(Vabc\nVrot13\ntR.",
        b"ccodecs\nencode\n(C\x03abcVlatin1\ntR.",
        b"ccopy_reg\n_reconstructor\n(ccollections\nOrderedDict\ncbuiltins\nbytearray\nJ\x00\x00\x00\x40tR.",
    ):
        # Refused before the call: bytearray(2**30) alone would take 1 GiB.
        outcome, peak = with_peak_memory(lambda: turbodill.loads(data, allow="data"))
        assert peak < 1 << 20, (data, peak)
        assert isinstance(outcome, pickle.UnpicklingError), (data, outcome)
    assert turbodill.loads(b"c__builtin__\nbytearray\n(V\xe9\nVlatin-1\ntR.", allow="data") == bytearray(b"\xe9")


def with_peak_memory(run):
    """What ``run()`` returned or raised, and the peak of the memory Python
    allocated meanwhile (bytes, bytearray and int storage included)."""
    tracemalloc.start()
    try:
        try:
            outcome = run()
        except Exception as e:  # noqa: BLE001 - the outcome is checked by the caller
            outcome = e
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_limits_of_restricted_loading():
    deep = b"\x80\x04)" + b"\x85" * 3000 + b"."
    with pytest.raises(UnsafePickleError, match="nested 3001 deep"):
        turbodill.loads(deep, allow="data")
    assert turbodill.loads(deep[:-2900] + b".", allow="data")  # 101 deep is fine
    deques = b"\x80\x04\x8c\x0bcollections\x8c\x05deque\x93\x94" + b"h\x00)R0" * 5001 + b"N."
    with pytest.raises(UnsafePickleError, match="5001 deque"):
        turbodill.loads(deques, allow="data")
    memo = b"\x80\x02Nr\xff\xff\xff\x3f."  # the C unpickler would allocate a 16 GiB memo
    with pytest.raises(UnsafePickleError, match="memo index"):
        turbodill.loads(memo, allow="data")
    with pytest.raises(UnsafePickleError, match="persistent"):
        turbodill.loads(b"Pid\n.", allow="data")


def test_allowlist_entries():
    data = pickle.dumps([uuid.UUID(int=1), collections.OrderedDict()], 4)
    assert turbodill.loads(data, allow=["uuid.UUID", "collections.*"])
    assert turbodill.loads(data, allow={"uuid.*", "collections.OrderedDict"})
    with pytest.raises(ForbiddenGlobalError, match="collections.OrderedDict"):
        turbodill.loads(data, allow=["uuid.*"])
    # module.* allows neither attributes of its names nor submodules.
    for module, name in (
        ("collections", "OrderedDict.fromkeys"),
        ("collections.abc", "Mapping"),
        ("collections", "__builtins__"),
    ):
        with pytest.raises(ForbiddenGlobalError, match=f"'{module}.{name}'"):
            turbodill.loads(stack_global(module, name) + b")R.", allow="collections.*")
    for bad in ("", "nodot", "a.*.b", ".x", "x.", "*", ["data", 3]):
        with pytest.raises((ValueError, TypeError)):
            turbodill.loads(data, allow=bad)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_data_loads_with_the_data_allowlist(protocol):
    obj = realistic_data()
    for dumps in (pickle.dumps, turbodill.dumps):
        data = dumps(obj, protocol)
        assert turbodill.inspect(data).data_only
        loaded = turbodill.loads(data, allow="data")
        assert loaded == obj
        assert type(loaded["groups"]) is collections.defaultdict and loaded["groups"].default_factory is list
        assert turbodill.load(io.BytesIO(data), allow="data") == obj


def test_restricted_unpickler_is_a_c_unpickler_reading_streams():
    assert issubclass(turbodill.RestrictedUnpickler, pickle.Unpickler)
    shared = ["memoized"]
    items = [{"a": 1}, [shared, shared], datetime.date(2026, 1, 1), b"x" * 100_000, (shared, shared)]
    stream = b"".join(pickle.dumps(item, 4) for item in items)

    class Pipe(io.RawIOBase):  # not seekable, short reads
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), 1000, len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    u = turbodill.RestrictedUnpickler(Pipe(stream), allow="data")
    assert [u.load() for _ in items] == items
    with pytest.raises(EOFError):
        u.load()
    f = io.BytesIO(stream + b"rest")
    u = turbodill.RestrictedUnpickler(f, allow="data")
    assert u.load() == items[0] and f.tell() == len(pickle.dumps(items[0], 4))

    class WithIds(turbodill.RestrictedUnpickler):
        def persistent_load(self, pid):
            return f"<{pid}>"

    assert WithIds(io.BytesIO(b"(Pa\nPb\nl."), allow="data").load() == ["<a>", "<b>"]


# ---- inspection ------------------------------------------------------------


def test_inspect_reports_globals_and_calls_without_importing():
    report = turbodill.inspect(turbodill.dumps(lambda x: x + 1))
    assert {"types.FunctionType", "types.CodeType"} <= set(report.globals)
    assert report.callables["types.FunctionType"] == 1 and not report.data_only
    assert report.protocol == 4 and report.frame_count == 1 and report.statically_resolvable

    array = np.arange(6).reshape(2, 3)
    report = turbodill.inspect(pickle.dumps(array, 5))
    assert any(name.startswith("numpy") for name in report.globals) and not report.data_only
    assert any(name.endswith(".__setstate__") for name in report.callables)
    report = turbodill.inspect(pickle.dumps(array, 5, buffer_callback=lambda b: False))
    assert report.buffer_count == 1

    data = pickle.dumps(realistic_data(), 2) + b"more"
    report = turbodill.inspect(data)
    assert report.data_only and report.trailing_bytes == 4 and report.size == len(data) - 4
    assert "datetime.datetime" in report.globals and "builtins.set" in report.globals  # mapped from __builtin__
    assert report.callables["uuid.UUID(...).__setstate__"] == 1
    assert turbodill.inspect(pickle.dumps([1, "a"], 0)) == turbodill.inspect(bytearray(pickle.dumps([1, "a"], 0)))

    persistent = turbodill.inspect(b"(Pfile-1\n\x8c\x01xQl.")
    assert persistent.persistent_ids == ("file-1", "x") and not persistent.data_only


def test_malformed_input_is_a_typed_error():
    data = pickle.dumps(realistic_data(), 4)
    for end in range(len(data) - 1):
        with pytest.raises(InspectError) as info:
            turbodill.inspect(data[:end])
        assert info.value.truncated
        with pytest.raises(pickle.UnpicklingError):
            turbodill.loads(data[:end], allow="data")
    for data, message in (
        (b"\x80\x04N\x80\x04.", "PROTO"),
        (b"N(R.", "underflow"),
        (b"h\x07.", "never stored"),
        (b"\xff", "invalid opcode"),
    ):
        with pytest.raises(InspectError, match=message):
            turbodill.inspect(data)
    rng = random.Random(7)
    for _ in range(3000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            turbodill.inspect(blob)
        except InspectError:
            pass


DECLARED_LENGTHS_CHILD = """
import resource, turbodill

status = open("/proc/self/status").read()
vm = int(status.split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
payloads = [b"\\x80\\x05" + op + (n).to_bytes(8, "little") + b"x" * 100
            for op in (b"\\x8e", b"\\x8d", b"\\x96", b"\\x95") for n in (1 << 32, 1 << 60)]
payloads += [b"\\x80\\x03" + op + (2**32 - 1).to_bytes(4, "little") + b"x" * 100 for op in (b"B", b"X")]
for data in payloads:
    for run in (turbodill.inspect, lambda data: turbodill.loads(data, allow="data")):
        try:
            run(data)
            print("loaded")
        except turbodill.InspectError as e:
            print("truncated" if e.truncated else e)
print("alive")
"""


def test_declared_lengths_allocate_nothing_before_their_bytes_are_there():
    """BINBYTES8, BINUNICODE8, BYTEARRAY8 and FRAME declaring 4 GiB and 2**60
    bytes, BINBYTES and BINUNICODE declaring 4 GiB, followed by 100: with the
    address space capped 64 MiB above what the interpreter uses, the static
    walk (behind inspect and restricted loading) finds each truncated, so it
    allocated nothing of the declared size (that would abort the process)."""
    out = _subproc.code(DECLARED_LENGTHS_CHILD, text=True).stdout
    assert out.splitlines() == ["truncated"] * 20 + ["alive"]


def _pickle_facts(data):
    """Opcode count, size and the globals the C unpickler imports, from the
    stdlib's own tools."""
    ops = list(pickletools.genops(data))
    imported = collections.Counter()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            imported[f"{module}.{name}"] += 1
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return len(ops), ops[-1][2] + 1, imported


data_strategy = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.builds(bytearray, st.binary(max_size=3))
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.datetimes(timezones=st.sampled_from([None, datetime.timezone.utc]))
    | st.complex_numbers(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.frozensets(st.integers(), max_size=3)
        | st.sets(st.text(max_size=2), max_size=3)
        | st.builds(collections.OrderedDict, st.dictionaries(st.text(max_size=2), inner, max_size=2))
        | st.builds(collections.deque, st.lists(inner, max_size=3))
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(data_strategy, st.sampled_from(PROTOCOLS), st.booleans())
def test_walk_agrees_with_pickletools_and_the_unpickler(obj, protocol, use_turbodill):
    data = (turbodill.dumps if use_turbodill else pickle.dumps)(obj, protocol)
    opcodes, size, imported = _pickle_facts(data)
    report = turbodill.inspect(data, fix_imports=False)
    assert report.opcode_count == opcodes and report.size == size == len(data)
    assert report.globals == dict(imported)
    assert turbodill.inspect(data).data_only
    assert turbodill.loads(data, allow="data") == obj or obj != obj


def test_cli_inspect(tmp_path):
    def cli(*args, stdin=None):
        return _subproc.python(["-m", "turbodill", "inspect", *args], stdin=stdin, check=False)

    data_file, code_file, bad_file = tmp_path / "data.pkl", tmp_path / "code.pkl", tmp_path / "bad.pkl"
    data_file.write_bytes(pickle.dumps(realistic_data(), 3))
    code_file.write_bytes(turbodill.dumps(lambda: 1))
    bad_file.write_bytes(b"\x80\x04\x95\xff\xff")
    out = cli(str(data_file))
    assert out.returncode == 0 and b"data only: yes" in out.stdout and b"datetime.datetime" in out.stdout
    out = cli(str(code_file))
    assert out.returncode == 1 and b"types.FunctionType" in out.stdout
    out = cli("--json", "-", stdin=code_file.read_bytes())
    assert out.returncode == 1 and json.loads(out.stdout)["globals"]["types.CodeType"] == 1
    out = cli(str(bad_file))
    assert out.returncode == 2 and b"truncated" in out.stderr and not out.stdout
    out = cli(str(tmp_path / "missing.pkl"))
    assert out.returncode == 2 and b"No such file" in out.stderr


def test_inspect_says_what_is_not_a_pickle(tmp_path):
    text_cases = {
        b"hello": "the data is text ('hello')",
        b'"""A module."""\nimport os\n': 'the data is text (\'"""A module."""\\nimpo\')',  # its first 20 characters
        "h\u00e9llo w\u00f6rld".encode(): "the data is text ('h\u00e9llo w\u00f6rld')",
        b'{"a": 1}': "the data is text ('{\"a\": 1}')",
        b"\x00\x01\x02": "it starts with b'\\x00\\x01\\x02'",
        b"": "the data is empty",
    }
    for data, description in text_cases.items():
        with pytest.raises(InspectError) as raised:
            turbodill.inspect(data)
        assert str(raised.value).startswith(f"not a pickle: {description} (read as a pickle: "), str(raised.value)
        assert raised.value.offset == 0
    # A malformed pickle keeps the walk's own message.
    for data in (pickle.dumps({"a": 1}, 0)[:-3], b"\x80\x05\x95", b"\x80\x04h\x05."):
        with pytest.raises(InspectError) as raised:
            turbodill.inspect(data)
        assert not str(raised.value).startswith("not a pickle"), str(raised.value)
    # Session files, signed or not, point to session-info.
    module = types.ModuleType("inspected_state")
    module.value = 1
    for key, hint in ((None, "session-info FILE`"), (b"k", "session-info FILE with --key-env VAR`")):
        path = tmp_path / "session.pkl"
        turbodill.dump_module(path, module=module, key=key)
        with pytest.raises(InspectError, match="not a pickle but a turbodill session"):
            turbodill.inspect(path.read_bytes())
        out = _subproc.python(["-m", "turbodill", "inspect", path], check=False)
        assert out.returncode == 2 and hint.encode() in out.stderr, out.stderr
    source = tmp_path / "safe.py"
    source.write_text("import os\nprint(os.getcwd())\n")
    out = _subproc.python(["-m", "turbodill", "inspect", source], check=False)
    assert out.returncode == 2 and b"not a pickle: the data is text ('import os" in out.stderr, out.stderr


def test_restricted_load_from_a_socket_reads_only_what_has_arrived():
    import socket
    import threading

    left, right = socket.socketpair()
    with left, right:
        reader = left.makefile("rb")
        reply = []
        thread = threading.Thread(target=lambda: reply.append(turbodill.load(reader, allow="data")))
        thread.start()
        right.sendall(pickle.dumps({"question": 1}))  # and nothing more until answered
        thread.join(timeout=5)
        assert reply == [{"question": 1}]


def test_an_opcode_straddling_its_frame_is_refused():
    """Found by fuzzing: the C unpickler reading such a payload from a file
    raised MemoryError and printed an unraisable SystemError. No pickler
    writes one; the walk refuses it, as pickle.py does."""
    length = (2).to_bytes(8, "little")
    data = b"\x80\x05\x95" + (3).to_bytes(8, "little") + b"\x96" + length + b"ab" + b"."
    with pytest.raises(turbodill.InspectError, match="crosses the end of its frame"):
        turbodill.inspect(data)
    with pytest.raises(pickle.UnpicklingError, match="crosses the end of its frame"):
        turbodill.loads(data, allow="data")
    nested = b"\x80\x05\x95" + (10).to_bytes(8, "little") + b"\x95" + (0).to_bytes(8, "little") + b"N."
    with pytest.raises(turbodill.InspectError, match="new frame begins"):
        turbodill.inspect(nested)
    big = [b"x" * 200_000, "y" * 70_000, list(range(30_000))]  # payloads outside frames, several frames
    for protocol in (4, 5):
        for dumps in (pickle.dumps, turbodill.dumps):
            data = dumps(big, protocol)
            assert turbodill.inspect(data).data_only
            assert turbodill.loads(data, allow="data") == big
