"""turbodill.msgpack: round trips, interop with plain MessagePack libraries,
shared references and cycles, registered classes, typed errors, hostile
input, deep nesting, leaks."""

import dataclasses
import datetime
import decimal
import enum
import io
import math
import os
import sys
import threading
import tracemalloc
import uuid
import zoneinfo
from typing import NamedTuple

import attrs
import msgpack
import ormsgpack
import pytest
from hypothesis import given, settings, strategies as st

import _subproc
import turbodill.msgpack as tm
from turbodill.msgpack import DecodeError, EncodeError, MsgpackError


def roundtrip(obj):
    return tm.unpackb(tm.packb(obj))


def assert_same(a, b):
    """Equal, with the same types all the way down (a tuple stays a tuple)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    else:
        assert a == b


def ext(code, payload):
    """A MessagePack ext with its smallest header, as any writer would make it."""
    return msgpack.packb(msgpack.ExtType(code, payload))


def pack_plain(obj):
    return msgpack.packb(obj, use_bin_type=True)


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

plain_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
plain_keys = st.text() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
plain_data = st.recursive(
    plain_scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(plain_keys, inner, max_size=6),
    max_leaves=30,
)

timezones = st.sampled_from(
    [
        None,
        datetime.timezone.utc,
        datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
        datetime.timezone(datetime.timedelta(hours=-3, seconds=7, microseconds=11), "Odd"),
        zoneinfo.ZoneInfo("Europe/Lisbon"),
        zoneinfo.ZoneInfo("America/New_York"),
    ]
)
rich_scalars = (
    plain_scalars
    | st.integers()
    | st.floats()
    | st.complex_numbers()
    | st.binary().map(bytearray)
    | st.datetimes(timezones=timezones)
    | st.dates()
    | st.times(timezones=timezones)
    | st.timedeltas()
    | st.decimals()
    | st.uuids()
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters())
)
hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.dates() | st.uuids(),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)
rich_data = st.recursive(
    rich_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
    ),
    max_leaves=25,
)


def rich_equal(a, b):
    """Equality that also holds for NaNs (float, complex, Decimal) and checks types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (float, complex, decimal.Decimal)):
        return repr(a) == repr(b)  # NaNs and signed zeros included
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(rich_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(rich_equal(a[k], b[k]) for k in a)
    if isinstance(a, (datetime.datetime, datetime.time)):
        return a == b and a.fold == b.fold and a.tzinfo == b.tzinfo
    return a == b


# ---------------------------------------------------------------------------
# Round trips and interop
# ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(plain_data)
def test_plain_data_is_plain_msgpack(obj):
    data = tm.packb(obj)
    # Byte for byte what msgpack writes, and readable by both libraries.
    assert data == pack_plain(obj)
    assert_same(msgpack.unpackb(data, strict_map_key=False), obj)
    assert_same(tm.unpackb(data), obj)
    assert_same(tm.unpackb(pack_plain(obj)), obj)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats(allow_nan=False)
        | st.text()
        | st.binary(),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
        max_leaves=25,
    )
)
def test_interop_with_ormsgpack(obj):
    assert_same(ormsgpack.unpackb(tm.packb(obj)), obj)
    assert_same(tm.unpackb(ormsgpack.packb(obj)), obj)


@settings(max_examples=300, deadline=None)
@given(rich_data)
def test_rich_data_round_trips_with_types(obj):
    assert rich_equal(roundtrip(obj), obj)


def test_ints_at_every_boundary():
    for value in [0, 127, 128, 255, 256, -32, -33, -128, -129, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 2**64 - 1]:
        data = tm.packb(value)
        assert data == pack_plain(value) and msgpack.unpackb(data) == value
        assert_same(tm.unpackb(data), value)
    for value in [2**64, -(2**63) - 1, 2**1000, -(2**1000), -(2**64)]:
        data = tm.packb(value)
        assert msgpack.unpackb(data).code == 6  # a big int is an ext for plain readers
        assert_same(tm.unpackb(data), value)


def test_floats_keep_sign_nan_and_inf():
    got = roundtrip([-0.0, math.inf, -math.inf, math.nan, 5e-324])
    assert math.copysign(1, got[0]) == -1
    assert got[1:3] == [math.inf, -math.inf] and math.isnan(got[3]) and got[4] == 5e-324
    # float32 from other writers reads as a float
    assert tm.unpackb(msgpack.packb(1.5, use_single_float=True)) == 1.5


def test_str_with_lone_surrogates_and_non_ascii():
    for s in ["a\ud800b", "\udfff", "é€😀", "x" * 70_000, ""]:
        assert roundtrip(s) == s
    assert msgpack.unpackb(tm.packb("é€😀")) == "é€😀"
    # Strs of every storage width are UTF-8 encoded natively, like CPython does.
    for s in ["café", "\u20ac100", "\U0001f600x", "a\u00ff\u0100\U00010000"]:
        assert tm.packb(s) == pack_plain(s)
    assert msgpack.unpackb(tm.packb("a\ud800")) == msgpack.ExtType(18, b"a\xed\xa0\x80")


def test_datetimes_keep_timezone_fold_and_identity_of_utc():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    dt = datetime.datetime(2021, 10, 31, 2, 30, tzinfo=paris, fold=1)
    got = roundtrip(dt)
    assert got == dt and got.fold == 1 and got.tzinfo is paris  # ZoneInfo's cache
    utc = roundtrip(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    assert utc.tzinfo is datetime.timezone.utc
    named = datetime.timezone(datetime.timedelta(hours=-2), "Somewhere")
    assert roundtrip(named) == named and roundtrip(named).tzname(None) == "Somewhere"
    t = datetime.time(23, 59, 59, 999999, tzinfo=datetime.timezone(datetime.timedelta(minutes=-90)), fold=1)
    assert rich_equal(roundtrip(t), t)
    assert roundtrip([datetime.date.min, datetime.date.max]) == [datetime.date.min, datetime.date.max]
    assert roundtrip([datetime.timedelta.min, datetime.timedelta.max]) == [
        datetime.timedelta.min,
        datetime.timedelta.max,
    ]


def test_tzinfo_without_a_wire_form_is_an_encode_error():
    class Custom(datetime.tzinfo):
        def utcoffset(self, dt):
            return datetime.timedelta(0)

    with pytest.raises(EncodeError, match=r"tzinfo of type 'Custom'.* at obj\[1\]"):
        tm.packb([0, datetime.datetime(2020, 1, 1, tzinfo=Custom())])
    tzfile = next(os.path.join(d, "UTC") for d in zoneinfo.TZPATH if os.path.exists(os.path.join(d, "UTC")))
    with open(tzfile, "rb") as f:
        keyless = zoneinfo.ZoneInfo.from_file(f)
    with pytest.raises(EncodeError, match="without a key"):
        tm.packb(datetime.datetime(2020, 1, 1, tzinfo=keyless))


def test_decimal_special_values():
    values = [
        decimal.Decimal(s)
        for s in ["NaN", "-sNaN", "Infinity", "-Infinity", "-0", "1E+999999", "3.14159265358979323846264338327950288"]
    ]
    got = roundtrip(values)
    assert [str(v) for v in got] == [str(v) for v in values]
    assert all(type(v) is decimal.Decimal for v in got)


def test_tuples_sets_and_unusual_keys():
    obj = {(1, "a"): [1], frozenset({1, 2}): (), None: {3}, 1.5: bytearray(b"ab"), b"k": frozenset()}
    got = roundtrip(obj)
    assert got == obj
    assert type(got[None]) is set and type(got[1.5]) is bytearray and type(got[b"k"]) is frozenset


def test_bytes_like_input_and_dump_load(tmp_path):
    data = tm.packb({"a": (1, 2)})
    for buf in (bytearray(data), memoryview(data)):
        assert tm.unpackb(buf) == {"a": (1, 2)}
    with pytest.raises(TypeError):
        tm.unpackb("not bytes")
    stream = io.BytesIO()
    tm.dump([1, {2}], stream)
    stream.seek(0)
    assert tm.load(stream) == [1, {2}]
    path = tmp_path / "doc.msgpack"
    with open(path, "wb") as f:
        tm.dump({"x": 1.5}, f)
    with open(path, "rb") as f:
        assert tm.load(f) == {"x": 1.5}


def test_exception_hierarchy():
    assert issubclass(EncodeError, MsgpackError) and issubclass(EncodeError, TypeError)
    assert issubclass(DecodeError, MsgpackError) and issubclass(MsgpackError, ValueError)
    assert not issubclass(DecodeError, TypeError)


# ---------------------------------------------------------------------------
# Shared references and cycles
# ---------------------------------------------------------------------------


def test_shared_references_and_cycles():
    shared = [1, 2]
    d = {"x": shared}
    obj = [shared, shared, d, d, (shared,)]
    obj.append(obj)
    d["self"] = d
    got = roundtrip(obj)
    assert got[0] is got[1] and got[2] is got[3] and got[5] is got
    assert got[2]["x"] is got[0] and got[2]["self"] is got[2] and got[4][0] is got[0]
    s = set()
    b = bytearray(b"z")
    got = roundtrip([s, s, b, b])
    assert got[0] is got[1] and got[2] is got[3]


def test_nothing_shared_costs_nothing_on_the_wire():
    tree = [[1], [2], {"a": [3]}]
    assert tm.packb(tree) == pack_plain(tree)


def test_shared_tuples_stay_small():
    t = ()
    for _ in range(100):
        t = (t, t)
    data = tm.packb(t)
    assert len(data) < 2000
    got = tm.unpackb(data)
    for _ in range(100):
        assert got[0] is got[1]
        got = got[0]
    assert got == ()


def test_a_cycle_through_a_tuple():
    inner = []
    t = (inner,)
    inner.append(t)
    got = roundtrip(inner)  # the cycle closes through the list
    assert got[0][0] is got
    with pytest.raises(EncodeError, match=r"cycle through an immutable 'tuple' .*at obj\[0\]\[0\]"):
        tm.packb(t)  # the tuple would have to contain itself before it exists


def test_a_tuple_with_one_reference_inside_a_cycle():
    inner = []
    inner.append((inner,))  # the tuple is referenced only by the list
    got = roundtrip(inner)
    assert got[0][0] is got


def graph_strategy():
    """Lists, dicts, sets and dataclass nodes with edges chosen by index (so
    sharing and cycles are frequent)."""
    kinds = st.sampled_from(["list", "dict", "node", "tuple", "set"])
    return st.lists(st.tuples(kinds, st.lists(st.integers(0, 30), max_size=4)), min_size=1, max_size=12)


@dataclasses.dataclass(eq=False)
class GraphNode:
    label: int
    edges: list = dataclasses.field(default_factory=list)


tm.register(GraphNode)


def build_graph(spec):
    mutable = []
    for i, (kind, _) in enumerate(spec):
        mutable.append(
            {"list": list, "dict": dict, "node": lambda i=i: GraphNode(i), "tuple": list, "set": set}[kind]()
        )
    # Fill the mutable nodes first; tuples are made from their targets last.
    for i, (kind, edges) in enumerate(spec):
        targets = [mutable[e % len(spec)] for e in edges]
        node = mutable[i]
        if kind in ("list", "tuple"):
            node.extend(targets)
        elif kind == "dict":
            node.update((f"k{j}", t) for j, t in enumerate(targets))
        elif kind == "node":
            node.edges.extend(targets)
        else:
            node.update(t for t in targets if isinstance(t, GraphNode))
    roots = [tuple(n) if kind == "tuple" else n for n, (kind, _) in zip(mutable, spec)]
    return roots


def assert_isomorphic(a, b, seen=None):
    """Same shape and the same sharing: a bijection between object ids."""
    seen = {} if seen is None else seen
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        assert type(x) is type(y)
        if isinstance(x, (int, str)):
            assert x == y
            continue
        if id(x) in seen:
            assert seen[id(x)] is y
            continue
        seen[id(x)] = y
        if isinstance(x, (list, tuple)):
            assert len(x) == len(y)
            stack.extend(zip(x, y))
        elif isinstance(x, dict):
            assert list(x) == list(y)
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, set):
            assert sorted(n.label for n in x) == sorted(n.label for n in y)
            stack.extend(zip(sorted(x, key=lambda n: n.label), sorted(y, key=lambda n: n.label)))
        else:
            assert x.label == y.label
            stack.append((x.edges, y.edges))


@settings(max_examples=300, deadline=None)
@given(graph_strategy())
def test_graphs_keep_their_sharing(spec):
    roots = build_graph(spec)
    assert_isomorphic(roots, roundtrip(roots))


# ---------------------------------------------------------------------------
# Registered classes
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0
    tags: list = dataclasses.field(default_factory=list)
    computed: int = dataclasses.field(init=False, default=0)

    def __post_init__(self):
        Point.inits += 1


Point.inits = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    a: int
    others: list


@attrs.define
class AttrsThing:
    name: str
    parts: list = attrs.Factory(list)


@attrs.frozen
class AttrsFrozen:
    value: int
    link: object = None


class Pair(NamedTuple):
    left: object
    right: object = None


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


for _cls in (Point, Frozen, AttrsThing, AttrsFrozen, Pair, Color, Level):
    tm.register(_cls)


def test_registered_classes_round_trip_without_init():
    p = Point(1, 2.5, ["t"])
    p.computed = 7
    before = Point.inits
    obj = [p, Frozen(3, [p]), AttrsThing("n", [1]), AttrsFrozen(4), Pair(p, Color.GREEN), Level.HIGH, Color.RED]
    got = roundtrip(obj)
    assert Point.inits == before  # __init__ (and __post_init__) never ran
    assert got == obj
    assert got[0].computed == 7 and got[1].others[0] is got[0] and got[4].left is got[0]
    assert got[5] is Level.HIGH and got[6] is Color.RED
    assert type(got[4]) is Pair


def test_cycles_through_frozen_slots_and_attrs_instances():
    holder = []
    f = Frozen(1, holder)
    holder.append(f)
    a = AttrsFrozen(2)
    object.__setattr__(a, "link", a)
    got_f, got_a = roundtrip([f, a])
    assert got_f.others[0] is got_f and got_a.link is got_a


def test_unset_fields_are_left_out():
    @dataclasses.dataclass
    class Lazy:
        __slots__ = ("a", "b")
        a: int
        b: int

    tm.register(Lazy)
    try:
        obj = Lazy.__new__(Lazy)
        obj.a = 1
        got = roundtrip(obj)
        assert got.a == 1 and not hasattr(got, "b")
    finally:
        tm.unregister(Lazy)


def test_register_names_and_unregister():
    @dataclasses.dataclass
    class Local:
        v: int

    assert tm.register(Local, name="app.Local") is Local
    data = tm.packb(Local(5))
    assert b"app.Local" in data
    assert tm.unpackb(data) == Local(5)
    with pytest.raises(ValueError, match="already registered"):
        tm.register(Point, name="app.Local")
    tm.unregister(Local)
    with pytest.raises(DecodeError, match='unknown registered name "app.Local"'):
        tm.unpackb(data)
    with pytest.raises(EncodeError, match=r"'Local' object at obj\[0\]"):
        tm.packb([Local(1)])
    assert b"test_msgpack.Point" in tm.packb(Point(1))  # default name: module.qualname
    with pytest.raises(TypeError, match="registers dataclasses"):
        tm.register(dict)


def test_registered_kind_must_match_the_payload():
    # A payload claiming that the Enum's name is a dataclass.
    name = tm._by_type[Color][0]
    payload = ext(16, pack_plain([name, {}]))
    with pytest.raises(DecodeError, match="not of the kind"):
        tm.unpackb(payload)


def test_payload_may_set_only_registered_fields():
    name = tm._by_type[Point][0]
    with pytest.raises(DecodeError, match='"__class__" is not a registered field'):
        tm.unpackb(ext(16, pack_plain([name, {"__class__": 1}])))
    with pytest.raises(DecodeError, match="no_such_member"):
        tm.unpackb(ext(15, pack_plain([tm._by_type[Color][0], "no_such_member"])))


# ---------------------------------------------------------------------------
# Typed errors when encoding
# ---------------------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    "obj, type_name, path",
    [
        ({"a": [0, 1, 2, Opaque()]}, "Opaque", "obj['a'][3]"),
        ([Point(Opaque())], "Opaque", "obj[0].x"),
        ({"k": {"inner": (1, {2: Opaque()})}}, "Opaque", "obj['k']['inner'][1][2]"),
        (Opaque(), "Opaque", "obj"),
        ([{1, Pair(1, lambda: 0)}], "function", "obj[0]{…}[1]"),
    ],
)
def test_unsupported_type_names_type_and_path(obj, type_name, path):
    with pytest.raises(EncodeError) as info:
        tm.packb(obj)
    message = str(info.value)
    assert f"cannot encode '{type_name}' object at {path}" in message


@pytest.mark.parametrize(
    "obj",
    [
        type("MyDict", (dict,), {})(),
        type("MyList", (list,), {})(),
        type("MyInt", (int,), {})(5),
        __import__("collections").OrderedDict(a=1),
    ],
)
def test_subclasses_of_builtins_are_not_downcast(obj):
    with pytest.raises(EncodeError, match=f"'{type(obj).__name__}'"):
        tm.packb(obj)


def test_errors_from_user_code_keep_their_type_and_get_a_path_note():
    @dataclasses.dataclass
    class Failing:
        broken: int = 0

    def broken(self):
        raise KeyError("inside")

    Failing.broken = property(broken)  # the field's value now comes from user code
    tm.register(Failing)
    try:
        with pytest.raises(KeyError) as info:
            tm.packb({"x": [Failing.__new__(Failing)]})
        assert "when encoding obj['x'][0]" in "".join(getattr(info.value, "__notes__", []))
    finally:
        tm.unregister(Failing)


def test_mutation_during_encoding_is_an_error_not_a_crash():
    victim = list(range(10))

    @dataclasses.dataclass
    class Mutator:
        grab: int = 0

    def grab(self):
        victim.clear()
        return 1

    Mutator.grab = property(grab)
    tm.register(Mutator)
    try:
        victim[3] = Mutator.__new__(Mutator)
        with pytest.raises(RuntimeError, match="list changed size"):
            tm.packb(victim)
    finally:
        tm.unregister(Mutator)


# ---------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------


def real_payload():
    shared = [1, "two", 3.0]
    obj = {
        "plain": [None, True, -5, 2**40, "text", b"bin", {"nested": [1, 2]}],
        "rich": (shared, shared, {frozenset({1}), (2, 3)}, bytearray(b"ba"), 2**70, 1j),
        "time": [datetime.datetime(2024, 2, 29, 12, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")), datetime.timedelta(3)],
        "values": [decimal.Decimal("1.1"), uuid.UUID(int=7), "\ud800"],
        "classes": [Point(1, tags=["x"]), Pair(1, 2), Color.RED, AttrsThing("a")],
    }
    obj["self"] = obj
    return tm.packb(obj)


def test_every_truncation_is_a_decode_error():
    data = real_payload()
    for i in range(len(data)):
        with pytest.raises(DecodeError):
            tm.unpackb(data[:i])


def test_trailing_bytes_are_a_decode_error():
    data = real_payload()
    tm.unpackb(data)
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        tm.unpackb(data + b"\xc0")
    with pytest.raises(DecodeError, match="trailing bytes in ext payload"):
        tm.unpackb(ext(9, pack_plain([2020, 1, 1]) + b"\x00"))


@pytest.mark.parametrize(
    "payload",
    [
        b"\xdd\xff\xff\xff\xff",  # array of 2**32-1 items
        b"\xdf\xff\xff\xff\xff",  # map of 2**32-1 entries
        b"\xdb\xff\xff\xff\xffabc",  # str of 2**32-1 bytes
        b"\xc6\xff\xff\xff\xffabc",  # bin
        b"\xc9\xff\xff\xff\xff\x06abc",  # ext (big int) of 2**32-1 bytes
        b"\xc7\x03\x02\xdd\xff\xff",  # a tuple announcing 2**32-1 items
        b"\xd7\x01" + (2**60).to_bytes(8, "big"),  # back-reference 2**60
        b"\xdd\xff\xff\xff\xff" + b"\x91" * 1000,  # huge array, then deep little ones
        b"\xdd\xff\xff\xff\xff" * 100_000,  # huge arrays nested in one another
        b"\xdf\xff\xff\xff\xff\xc0" * 50_000,  # huge maps nested as keys
    ],
)
def test_huge_length_fields_fail_fast_without_allocating(payload):
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            tm.unpackb(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Memory in proportion to the input (an empty list per 5-byte header, at
    # most one reserved list slot per input byte), never to the lengths
    # claimed (a slot reserved per claimed item would be terabytes here).
    assert peak < (1 << 20) + 32 * len(payload)


OUT_OF_MEMORY_CHILD = """
import resource
import turbodill.msgpack as tm

def capped(margin, run):
    # The address space capped `margin` above what the interpreter uses now.
    status = open("/proc/self/status").read()
    vm = int(status.split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + margin, resource.RLIM_INFINITY))
    try:
        run()
        return "no error"
    except MemoryError as e:
        return " ".join(["MemoryError", str(e).split(" (")[0], *getattr(e, "__notes__", ())])
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

big = 48 << 20
for obj in (
    b"x" * big,
    "x" * big,
    "\\xe9" * (big // 2),  # 48 MiB of UTF-8
    bytearray(big),  # an ext payload
    [1000] * (6 << 20),  # 18 MiB, grown three bytes at a time
    {"k": [1, (2, b"y" * big)]},
):
    print(capped(8 << 20, lambda: tm.packb(obj)))
    del obj
# Room for the 32 MiB of output, not for the bytes object it is copied into.
obj = b"x" * (32 << 20)
print(capped(40 << 20, lambda: tm.packb(obj)))
del obj
payload = tm.packb(b"x" * big)
print(capped(8 << 20, lambda: tm.unpackb(payload)))
payload = bytearray(payload)  # copied before decoding
print(capped(8 << 20, lambda: tm.unpackb(payload)))
del payload
print(tm.unpackb(tm.packb([1, "a", b"b", (2.5,)])))
"""


def test_out_of_memory_is_a_memory_error():
    """The address space capped just above what the interpreter uses: the
    output buffer cannot grow for a large value written at once, for one
    grown write by write, nor the bytes object it ends in; decoding cannot
    make a large bytes, nor copy a large bytearray input. Each is a
    MemoryError (growing a Rust Vec infallibly aborted the process), and the
    codec works again once memory is back."""
    lines = _subproc.code(OUT_OF_MEMORY_CHILD, text=True).stdout.splitlines()
    packing = "MemoryError out of memory for the MessagePack output"
    assert lines[:4] == [packing] * 4
    assert lines[4].startswith(f"{packing} when encoding obj[")  # the item it stopped at
    assert lines[5:] == [
        f"{packing} when encoding obj['k'][1][1]",
        "MemoryError ",  # the bytes object, from CPython's allocator
        "MemoryError ",
        "MemoryError out of memory for a copy of the MessagePack input",
        "[1, 'a', b'b', (2.5,)]",
    ]


def test_malformed_ext_payloads():
    cases = [
        (ext(1, b"\x00\x00\x00"), "back-reference of 3 bytes"),
        (ext(1, b"\x05"), "back-reference 5 out of range"),
        (ext(99, b""), "unknown ext type 99"),
        (msgpack.packb(datetime.datetime.now(datetime.timezone.utc), datetime=True), "unknown ext type -1"),
        (b"\xc1", "0xc1"),
        (b"\xa2\xff\xfe", "invalid UTF-8"),
        (ext(8, pack_plain([2020, 13, 1, 0, 0, 0, 0, False, None])), "month must be in 1..12"),
        (ext(8, pack_plain([2020, 1, 1, 0, 0, 0, 0, False, "../../etc/passwd"])), "cannot build"),
        (ext(8, pack_plain([2020, 1, 1, 0, 0, 0, 0, False, 10**11])), "cannot build"),
        (ext(13, b"not a number"), "cannot build"),
        (ext(2, pack_plain([1, 2]) + b"\xc0"), "ext payload ends"),
        (ext(4, pack_plain([[1]])), "unhashable"),
        (pack_plain({(): 1}).replace(b"\x90", ext(2, b"\x90")), None),  # a tuple key is fine
        (ext(16, pack_plain(["os.system", {}])), 'unknown registered name "os.system"'),
    ]
    for payload, message in cases:
        if message is None:
            assert tm.unpackb(payload) == {(): 1}
            continue
        with pytest.raises(DecodeError) as info:
            tm.unpackb(payload)
        assert message in str(info.value) or message in str(info.value.__cause__), (payload, info.value)


def test_a_hostile_tuple_cannot_contain_itself():
    # A tuple whose item is a back-reference to itself: it has no number yet.
    with pytest.raises(DecodeError, match="back-reference 0 out of range"):
        tm.unpackb(ext(2, b"\x91" + ext(1, b"\x00")))
    # A list may, since it is numbered before its items.
    got = tm.unpackb(b"\x91" + ext(1, b"\x00"))
    assert got[0] is got


def test_loading_never_imports_or_calls_unregistered_names():
    names = ["os.system", "subprocess.Popen", "antigravity.fly", "builtins.eval", "test_msgpack.Opaque"]
    before = set(sys.modules)
    for name in names:
        for code, body in [(16, [name, {"args": "echo pwned"}]), (17, [name, ["echo"]]), (15, [name, "x"])]:
            with pytest.raises(DecodeError, match="unknown registered name"):
                tm.unpackb(ext(code, pack_plain(body)))
    assert set(sys.modules) == before
    assert "antigravity" not in sys.modules


def test_loading_in_a_fresh_interpreter_imports_nothing_new():
    code = (
        "import sys, turbodill.msgpack as tm; before = set(sys.modules);"
        "tm.unpackb(bytes.fromhex(sys.argv[1]));"
        "print(sorted(set(sys.modules) - before))"
    )
    payload = real_payload_for_subprocess()
    out = _subproc.code(code, payload.hex(), text=True)
    assert out.stdout.strip() == "[]"


def real_payload_for_subprocess():
    # Only types that need no registration (the subprocess registers nothing).
    return tm.packb(
        [
            datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")),
            decimal.Decimal("2.5"),
            uuid.UUID(int=3),
            {1, 2},
            2**100,
            1 + 1j,
        ]
    )


# ---------------------------------------------------------------------------
# Depth
# ---------------------------------------------------------------------------


def nest(depth, make=lambda inner: [inner]):
    obj = None
    for _ in range(depth):
        obj = make(obj)
    return obj


def run_in_small_stack_thread(fn):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    old = threading.stack_size(256 * 1024)
    try:
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    return result


def test_deep_nesting_in_a_small_stack_thread():
    depth = 99_000
    deep = nest(depth, lambda inner: [inner, {"k": (inner,)}] if inner is None else [inner])
    result = run_in_small_stack_thread(lambda: tm.unpackb(tm.packb(deep)))
    assert "error" not in result, result.get("error")
    got, n = result["value"], 0
    while isinstance(got, list):
        got, n = got[0], n + 1
    assert n == depth and got is None
    hostile = b"\x91" * 1_000_000 + b"\xc0"
    result = run_in_small_stack_thread(lambda: tm.unpackb(hostile))
    assert isinstance(result.get("error"), DecodeError) and "deeper than 100000" in str(result["error"])
    hostile_ext = b"\xc7\x00\x02\x91" * 300_000  # tuples claiming nested tuples
    result = run_in_small_stack_thread(lambda: tm.unpackb(hostile_ext))
    assert isinstance(result.get("error"), DecodeError)


def test_encoding_too_deep_is_an_encode_error():
    with pytest.raises(EncodeError, match="nested deeper than 100000 levels"):
        tm.packb(nest(100_001))
    assert tm.unpackb(tm.packb(nest(100_000))) is not None


# ---------------------------------------------------------------------------
# Leaks
# ---------------------------------------------------------------------------


def test_no_reference_leaks():
    shared = ["shared"]
    key = "a-key-%d" % os.getpid()
    obj = {key: [shared, shared, (shared,), {1: shared}], "p": Point(1, tags=shared)}
    data = tm.packb(obj)
    tm.unpackb(data)
    before_shared, before_key = sys.getrefcount(shared), sys.getrefcount(key)
    for _ in range(20_000):
        tm.packb(obj)
        tm.unpackb(data)
    for payload in (data[:-3], data + b"\x00", ext(1, b"\x09")):
        for _ in range(2000):
            with pytest.raises(DecodeError):
                tm.unpackb(payload)
    for _ in range(2000):
        with pytest.raises(EncodeError):
            tm.packb([shared, Opaque()])
    assert sys.getrefcount(shared) == before_shared
    assert sys.getrefcount(key) == before_key


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_memory_stays_flat_over_many_round_trips():
    obj = [
        {"id": i, "name": f"n{i}", "v": [i * 0.5, (i,), {i}], "t": datetime.date(2020, 1, 1 + i % 28)}
        for i in range(50)
    ]
    data = tm.packb(obj)
    for _ in range(2000):  # warm up allocators and caches
        tm.unpackb(tm.packb(obj))
    tracemalloc.start()
    start_rss = rss_kib()
    try:
        for _ in range(20_000):
            tm.unpackb(data)
            tm.packb(obj)
        traced = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert traced < 256 * 1024
    assert rss_kib() - start_rss < 16 * 1024
