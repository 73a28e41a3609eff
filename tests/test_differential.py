"""Differential tests: turbodill must write exactly the bytes pickle writes.

Property-based (hypothesis) object graphs are pickled with the C pickler
(`pickle.dumps` / `pickle.Pickler`) and with turbodill, for every protocol,
and the outputs are compared byte for byte (dumps, dump, Pickler.dump, two
dumps through one Pickler). When pickle raises, turbodill must raise an
instance of the exception type pickle raised. Loading turbodill's output and
pickling the result again must give what the same does for pickle's output.

The classes the graphs instantiate live in tests/_diff_types.py so that they
are importable by qualified name.
"""

import collections
import datetime
import decimal
import fractions
import functools
import io
import math
import os
import pickle
import pickletools
import reprlib
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

import _diff_types as T
import _subproc
import turbodill

PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))
assert PROTOCOLS == (0, 1, 2, 3, 4, 5)

# No example database (reproducible in CI), no deadline, no slowness checks.
# The max_examples values below keep the whole file well under 60 seconds.
DIFF_SETTINGS = settings(
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8
_repr.maxlevel = 4


# --------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------


def _dis(data):
    out = io.StringIO()
    try:
        pickletools.dis(data, out=out)
    except Exception as e:  # turbodill output that pickletools cannot read
        out.write(f"<pickletools.dis failed: {type(e).__name__}: {e}>\n")
    return out.getvalue()


def explain(expected, got, what):
    """A readable description of two differing pickles."""
    i = next(
        (k for k, (a, b) in enumerate(zip(expected, got)) if a != b),
        min(len(expected), len(got)),
    )
    lines = [
        f"{what}: pickle wrote {len(expected)} bytes, turbodill wrote {len(got)} bytes; first difference at offset {i}",
        f"  pickle   [{max(0, i - 24)}:{i + 40}]: {expected[max(0, i - 24) : i + 40]!r}",
        f"  turbodill[{max(0, i - 24)}:{i + 40}]: {got[max(0, i - 24) : i + 40]!r}",
    ]
    if len(expected) <= 4000 and len(got) <= 4000:
        lines += ["--- pickle:", _dis(expected), "--- turbodill:", _dis(got)]
    return "\n".join(lines)


def assert_same_bytes(expected, got, what):
    assert isinstance(got, bytes), f"{what}: turbodill returned {type(got)!r}"
    if got != expected:
        raise AssertionError(explain(expected, got, what))


def run(fn):
    """('ok', value) or ('raise', exception)."""
    try:
        return ("ok", fn())
    except Exception as e:  # noqa: BLE001 - we compare the exception types
        return ("raise", e)


def assert_same_outcome(ref, fn, what, by_value_ok=False):
    """`ref` is pickle's outcome (from run()); check turbodill's `fn` against it.

    Same bytes when pickle succeeds; when pickle raises, turbodill must raise
    an instance of the exception type pickle raised. With `by_value_ok`
    (graphs holding lambdas, local classes, locks...: things turbodill pickles
    by value, by design, where pickle gives up) turbodill may instead succeed,
    and then pickle.loads must read what it wrote, or fail later in the graph
    with a PicklingError or TypeError.

    Returns turbodill's bytes on success, None when pickle raised.
    """
    kind, value = ref
    got_kind, got = run(fn)
    if kind == "raise" and by_value_ok and got_kind == "ok":
        if isinstance(got, bytes):
            pickle.loads(got)
        return None
    if kind == "raise" and by_value_ok and isinstance(got, (pickle.PicklingError, TypeError)):
        # Having pickled by value what stopped pickle, turbodill may stop
        # further on, at something nobody can pickle (a generator, say).
        return None
    if kind == "raise":
        assert got_kind == "raise", (
            f"{what}: pickle raised {type(value).__name__}: {value} but turbodill returned {len(got)} bytes"
        )
        # isinstance, not identity: turbodill may raise a documented subclass
        # (UnpicklableError is both the TypeError pickle raises and a
        # PicklingError), so `except <pickle's type>` still catches it.
        assert isinstance(got, type(value)), (
            f"{what}: pickle raised {type(value).__name__}: {value}; turbodill raised {type(got).__name__}: {got}"
        )
        return None
    if got_kind == "raise":
        raise AssertionError(
            f"{what}: pickle succeeded ({len(value)} bytes) but turbodill raised {type(got).__name__}: {got}"
        ) from got
    assert_same_bytes(value, got, what)
    return got


def file_dump(mod, obj, protocol, times=1, **kw):
    f = io.BytesIO()
    p = mod.Pickler(f, protocol, **kw)
    for _ in range(times):
        p.dump(obj)
    return f.getvalue()


def module_dump(mod, obj, protocol):
    f = io.BytesIO()
    mod.dump(obj, f, protocol)
    return f.getvalue()


def assert_same_memo(obj, protocol):
    """After one dump, both memos hold the same objects of the graph at the same
    indices. Both picklers stay alive together, so temporaries made during
    the dump (reduce results, say) cannot share an id between the two memos;
    those are only compared by their indices."""
    memos = []
    picklers = []
    for mod in (pickle, turbodill):
        pk = mod.Pickler(io.BytesIO(), protocol)
        pk.dump(obj)
        picklers.append(pk)
        memos.append({k: v[0] for k, v in pk.memo.copy().items()})
    ref, got = memos
    # turbodill spends, but does not keep, the memo indices of the temporary
    # (dict, slots) state it builds for __slots__ instances: nothing can
    # refer back to them, and not keeping them saves the stdlib's memory.
    # So its indices are the stdlib's minus those.
    assert set(got.values()) <= set(ref.values()), f"memo indices differ (protocol={protocol})"
    assert max(got.values(), default=-1) <= max(ref.values(), default=-1)
    common = ref.keys() & got.keys()
    assert {k: got[k] for k in common} == {k: ref[k] for k in common}, (
        f"memo maps an object to different indices (protocol={protocol})"
    )


def reload(data, protocol, **kw):
    """Load with the C unpickler, then pickle the result again (stdlib)."""
    try:
        obj = pickle.loads(data, **kw)
    except Exception as e:  # noqa: BLE001
        return ("load raised", type(e))
    try:
        return ("ok", pickle.dumps(obj, protocol))
    except Exception as e:  # noqa: BLE001
        return ("re-dump raised", type(e))


def assert_same_round_trip(got, expected, protocol):
    """pickle.loads(turbodill bytes), pickled again, equals the same for pickle's bytes.

    Re-pickling rather than == handles NaN and cycles. A set of objects hashed
    by identity iterates in a different order after every load, so when
    pickle's own round trip is not reproducible only the outcome is compared.
    """
    mine = reload(got, protocol)
    refs = []
    for _ in range(6):
        ref = reload(expected, protocol)
        if mine == ref:
            return
        if ref not in refs:
            refs.append(ref)
    if len(refs) > 1:  # nondeterministic (identity hashes): compare the outcome only
        assert mine[0] == ref[0], f"round trip differs (protocol={protocol}): {mine!r:.300} vs {ref!r:.300}"
        if mine[0] == "ok":
            assert len(mine[1]) == len(ref[1]), f"round trip differs (protocol={protocol})"
        return
    raise AssertionError(
        f"round trip differs (protocol={protocol}): loading turbodill's bytes and"
        f" pickling again gives {mine!r:.300}, for pickle's bytes {ref!r:.300}"
    )


def check_all(obj, protocols=PROTOCOLS, fix_imports_variants=(True,), by_value_ok=False):
    """Every property for one object: dumps, dump, Pickler path, round trip."""
    kw = dict(by_value_ok=by_value_ok)
    for p in protocols:
        for fix in fix_imports_variants:
            what = f"dumps(protocol={p}, fix_imports={fix})"
            dumps_ref = run(lambda: pickle.dumps(obj, p, fix_imports=fix))
            got = assert_same_outcome(dumps_ref, lambda: turbodill.dumps(obj, p, fix_imports=fix), what, **kw)
        # File path through Pickler objects (including two dumps sharing a memo).
        ref = run(lambda: file_dump(pickle, obj, p))
        assert_same_outcome(ref, lambda: file_dump(turbodill, obj, p), f"Pickler(protocol={p}).dump", **kw)
        ref_dump = run(lambda: module_dump(pickle, obj, p))
        assert_same_outcome(ref_dump, lambda: module_dump(turbodill, obj, p), f"dump(obj, file, protocol={p})", **kw)
        if ref[0] == "ok":
            ref2 = run(lambda: file_dump(pickle, obj, p, times=2))
            assert_same_outcome(
                ref2,
                lambda: file_dump(turbodill, obj, p, times=2),
                f"Pickler(protocol={p}).dump twice (shared memo)",
            )
        # Round trip: turbodill's bytes load, and load to the same thing.
        if got is not None:
            assert_same_round_trip(got, dumps_ref[1], p)


# --------------------------------------------------------------------------
# Leaf strategies
# --------------------------------------------------------------------------

_INT_EXPONENTS = (7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 2031, 2032, 2039, 2040, 2047, 2048)
INT_BOUNDARIES = sorted(
    {s * (2**k + d) for k in _INT_EXPONENTS for d in (-1, 0, 1) for s in (1, -1)}
    | {0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**3000, -(2**3000)}
)

ints = st.one_of(
    st.integers(-300, 300),
    st.sampled_from(INT_BOUNDARIES),
    st.integers(-(2**70), 2**70),
    st.integers(-(2**3000), 2**3000),
)

_nan_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0]
SPECIAL_FLOATS = [
    math.nan,
    -math.nan,
    _nan_payload,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    0.1,
    1e16,
    1e-5,
    123456789.0,
    1e22,
    1.5,
]
floats = st.one_of(st.floats(), st.sampled_from(SPECIAL_FLOATS))

# Characters that matter to some encoder: protocol 0's raw-unicode-escape
# (backslash, newlines, NUL, ^Z), lone surrogates (surrogatepass), astral ones.
SPECIAL_CHARS = list("\\\n\r\x00\x1a\"' \x7f\x80\xff\u0100\u20ac\uffff\U00010000\U0010ffff\U0001f600") + [
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ud83d",
    "\ude00",
]
chars = st.one_of(
    st.characters(codec=None, exclude_categories=()),  # everything, incl. surrogates
    st.characters(categories=["Cs"]),  # lone surrogates, more often
    st.sampled_from(SPECIAL_CHARS),
    st.characters(max_codepoint=0x7F),
)
short_text = st.text(chars, max_size=24)
# Long strings, built by repetition (drawing 100k characters one by one is slow);
# the lengths straddle the 256-byte SHORT_BINUNICODE limit and 64 KiB frames.
_LONG_LENGTHS = [255, 256, 257, 65535, 65536, 65537, 70000]
long_text = st.builds(
    lambda s, n: (s * n)[: max(n, 1)] if n in _LONG_LENGTHS else s * n,
    st.text(chars, min_size=1, max_size=3),
    st.one_of(st.sampled_from(_LONG_LENGTHS), st.integers(1, 40000)),
)
texts = st.one_of(short_text, short_text, short_text, long_text)

short_bytes = st.binary(max_size=24)
long_bytes = st.builds(
    lambda b, n: (b * n)[:n],
    st.binary(min_size=1, max_size=3),
    st.one_of(st.sampled_from(_LONG_LENGTHS + [65534, 131072]), st.integers(1, 80000)),
)
bytes_ = st.one_of(short_bytes, short_bytes, long_bytes)
# One-byte values often: CPython pickles a bytearray (below protocol 5) by
# reducing it to bytearray(<fresh bytes copy>), never to the shared 1-byte
# bytes singleton, which changes what the memo shares.
bytearrays = st.one_of(short_bytes, st.binary(min_size=1, max_size=1), long_bytes).map(bytearray)

TZS = [
    datetime.timezone.utc,
    datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
    datetime.timezone(datetime.timedelta(hours=-8), "PST"),
]
datetimes = st.one_of(
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from(TZS)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.builds(lambda d: d.replace(fold=1), st.datetimes()),
    st.sampled_from(TZS),
)

decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [decimal.Decimal(s) for s in ("NaN", "-NaN", "sNaN", "Infinity", "-0", "0E-1000", "1.5E+1000", "3.14")]
    ),
)

simple_leaves = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    texts,
    bytes_,
)

GLOBAL_REFS = [
    int,
    list,
    dict,
    object,
    type,
    type(None),
    type(Ellipsis),
    type(NotImplemented),
    Ellipsis,
    NotImplemented,
    len,
    math.sqrt,
    abs,
    collections.OrderedDict,
    collections.defaultdict,
    datetime.datetime,
    decimal.Decimal,
    T.Plain,
    T.Point,
    T.Outer,
    T.Outer.Inner,
    T.Outer.Inner.__init__,
    T.Plain.__init__,
    T.module_function,
    T.SINGLETON,
    T.Color,
    dict.fromkeys,
    "abc".upper,
    [].append,
    pickle.loads,
    io.BytesIO,
    functools.partial,
]

other_leaves = st.one_of(
    bytearrays,
    datetimes,
    decimals,
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.builds(complex, floats, floats),
    st.builds(range, st.integers(-5, 5), ints, st.integers(1, 7) | st.integers(-7, -1)),
    st.builds(fractions.Fraction, st.integers(-1000, 1000), st.integers(1, 1000)),
    st.sampled_from(GLOBAL_REFS),
    st.sampled_from(list(T.Color)),
    st.integers(0, 7).map(T.Perm),
    st.builds(T.Empty),
    st.builds(object),
)

leaves = st.one_of(simple_leaves, simple_leaves, other_leaves)

# Hashable leaves with a hash that is reproducible after loading (so that
# sets built from them iterate in the same order on both sides): no NaN
# (its hash is id-based), no instances hashed by identity.
stable_hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats.filter(lambda f: not math.isnan(f)),
    short_text,
    short_bytes,
    st.sampled_from([int, len, T.Plain, T.SINGLETON, Ellipsis]),
    st.sampled_from(list(T.Color)),
    st.dates(),
    st.timedeltas(),
    st.tuples(short_text, ints),
    st.tuples(),
    st.frozensets(st.integers(-5, 5) | short_text, max_size=4),
)

BAD_LEAVES = [
    T.module_lambda,  # attribute lookup fails -> PicklingError
    lambda: None,  # a local function
]
bad_leaves = st.one_of(
    st.sampled_from(BAD_LEAVES),
    st.builds(T.make_local_instance),
    st.builds(T.make_generator),
    st.builds(lambda: iter([1, 2])),  # picklable (via iter), mixed in for contrast
    st.builds(lambda: memoryview(b"abc")),  # TypeError
    st.builds(lambda: __import__("threading").Lock()),  # TypeError
)


def _stable(o, depth=0):
    """Is `o` hashable with a hash that does not depend on object identity?"""
    if depth > 20:
        return False
    if o is None or isinstance(o, (bool, int, str, bytes, datetime.date, datetime.timedelta, range)):
        return True
    if isinstance(o, float):
        return not math.isnan(o)
    if isinstance(o, complex):
        return not (math.isnan(o.real) or math.isnan(o.imag))
    if isinstance(o, decimal.Decimal):
        return not o.is_nan()
    if isinstance(o, (tuple, frozenset)):
        return all(_stable(x, depth + 1) for x in o)
    if isinstance(o, T.FrozenDC):
        return _stable(o.a, depth + 1) and _stable(o.b, depth + 1)
    if isinstance(o, type) or callable(o) and getattr(o, "__module__", None) in ("builtins", "math"):
        return True
    if o is T.SINGLETON or o is Ellipsis:
        return True
    return False


def _hashable(o):
    try:
        hash(o)
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------
# Object graph strategy: containers and instances, with shared references
# (children drawn from a pool of already-built nodes) and cycles (pool nodes
# mutated afterwards to point at other pool nodes, possibly themselves).
# --------------------------------------------------------------------------

NODE_KINDS = [
    "list",
    "list",
    "tuple",
    "tuple",
    "dict",
    "dict",
    "set",
    "frozenset",
    "Plain",
    "Slotted",
    "SlottedWithDict",
    "DC",
    "FrozenDC",
    "ReduceArgs",
    "Reduce5",
    "Reduce5AppendOnly",
    "GetSetState",
    "GetNewArgs",
    "GetNewArgsEx",
    "ListSub",
    "DictSub",
    "Point",
    "OrderedDict",
    "defaultdict",
    "Counter",
    "deque",
    "Inner",
    "slice",
    "big",
]

# Objects whose state (or items) is saved after the object is memoized, so a
# reference back to them terminates; only these are mutated into cycles.
# Not ListSub/DictSub: below protocol 2 they reduce to
# copyreg._reconstructor(cls, list, list(self)), a fresh copy in the *args*,
# so a ListSub containing itself recurses forever (pickle: RecursionError).
# That case has its own test, test_infinitely_recursive_reduce_raises.
CYCLE_TARGETS = (
    list,
    dict,
    collections.deque,
    collections.OrderedDict,
    collections.defaultdict,
    T.Plain,
    T.Empty,
    T.DC,
    T.SlottedWithDict,
    T.Slotted,
    T.GetSetState,
    T.Reduce5,
    T.Reduce5AppendOnly,
    T.Outer.Inner,
)


def _big_container(draw, child, hchild):
    """Containers whose size straddles the 1000-item batching of APPENDS/SETITEMS/ADDITEMS."""
    n = draw(st.sampled_from([999, 1000, 1001, 1999, 2000, 2001, 3001]))
    kind = draw(
        st.sampled_from(
            [
                "list",
                "tuple",
                "dict",
                "set",
                "frozenset",
                "ListSub",
                "DictSub",
                "OrderedDict",
                "deque",
                "Reduce5",
                "bytearray",
                "str",
            ]
        )
    )
    elem = draw(st.sampled_from(["int", "str", "shared", "none", "mixed"]))
    base = draw(st.integers(-(2**40), 2**40) | st.integers(-5, 5))
    shared = child()
    if elem == "int":
        items = [base + i for i in range(n)]
    elif elem == "str":
        items = [f"s{base + i}" for i in range(n)]
    elif elem == "shared":
        items = [shared] * n
    elif elem == "none":
        items = [None] * n
    else:
        items = [(i, f"x{i}", shared) if i % 3 else float(i) for i in range(n)]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    if kind == "ListSub":
        return T.ListSub(items)
    if kind == "deque":
        return collections.deque(items)
    if kind == "Reduce5":
        return T.Reduce5(items, {i: v for i, v in enumerate(items)})
    if kind == "bytearray":
        return bytearray(range(256)) * (n // 256 + 1)
    if kind == "str":
        return f"{base}\u20ac\\" * n
    keys = [base + i for i in range(n)] if elem != "str" else [f"k{base + i}" for i in range(n)]
    if kind == "dict":
        return dict(zip(keys, items))
    if kind == "DictSub":
        return T.DictSub(zip(keys, items))
    if kind == "OrderedDict":
        return collections.OrderedDict(zip(keys, items))
    if kind == "set":
        return set(keys)
    return frozenset(keys)


def _make_node(draw, kind, child, hchild, schild):
    k = draw(st.integers(0, 5) | st.sampled_from([6, 7, 20]))
    cs = lambda: [child() for _ in range(k)]  # noqa: E731
    if kind == "list":
        return cs()
    if kind == "tuple":
        return tuple(cs())
    if kind == "dict":
        return {hchild(): child() for _ in range(k)}
    if kind == "set":
        return {schild() for _ in range(k)}
    if kind == "frozenset":
        return frozenset(schild() for _ in range(k))
    if kind == "Plain":
        o = T.Plain(child(), child())
        if draw(st.booleans()):
            o.extra = child()
        return o
    if kind == "Slotted":
        return T.Slotted(child(), draw(st.none() | st.just(1)) and child())
    if kind == "SlottedWithDict":
        return T.SlottedWithDict(child(), child())
    if kind == "DC":
        return T.DC(child(), child())
    if kind == "FrozenDC":
        return T.FrozenDC(child(), child())
    if kind == "ReduceArgs":
        return T.ReduceArgs(child(), child())
    if kind == "Reduce5":
        state = draw(st.sampled_from([None, "child", 0]))
        return T.Reduce5(
            cs(), {hchild(): child() for _ in range(draw(st.integers(0, 3)))}, child() if state == "child" else state
        )
    if kind == "Reduce5AppendOnly":
        return T.Reduce5AppendOnly(cs())
    if kind == "GetSetState":
        if draw(st.booleans()):
            return T.GetSetState()  # falsy state
        return T.GetSetState(child(), child())
    if kind == "GetNewArgs":
        return T.GetNewArgs(child(), child())
    if kind == "GetNewArgsEx":
        return T.GetNewArgsEx(child(), y=child())
    if kind == "ListSub":
        o = T.ListSub(cs())
        if draw(st.booleans()):
            o.attr = child()
        return o
    if kind == "DictSub":
        o = T.DictSub({hchild(): child() for _ in range(k)})
        if draw(st.booleans()):
            o.attr = child()
        return o
    if kind == "Point":
        return T.Point(child(), child())
    if kind == "OrderedDict":
        return collections.OrderedDict((hchild(), child()) for _ in range(k))
    if kind == "defaultdict":
        d = collections.defaultdict(list)
        for _ in range(k):
            d[hchild()].append(child())
        return d
    if kind == "Counter":
        return collections.Counter({hchild(): draw(ints | st.just(None) | floats) for _ in range(k)})
    if kind == "deque":
        items = cs()
        maxlen = draw(st.none() | st.integers(len(items), len(items) + 3))
        return collections.deque(items, maxlen)
    if kind == "Inner":
        return T.Outer.Inner(child())
    if kind == "slice":
        return slice(child(), child(), child())
    if kind == "big":
        return _big_container(draw, child, hchild)
    raise AssertionError(kind)


@st.composite
def graphs(draw, leaf=leaves, max_nodes=8, allow_cycles=True, bad=False):
    pool = []
    if bad:
        leaf = st.one_of(leaf, bad_leaves)

    def child():
        if pool and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(pool))  # shared reference
        return draw(leaf)

    def hchild():  # dict keys: any hashable (dicts keep insertion order)
        cands = [o for o in pool if _hashable(o)]
        if cands and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(cands))
        return draw(stable_hashable_leaves)

    def schild():  # set members: hash must not depend on identity
        cands = [o for o in pool if _hashable(o) and _stable(o)]
        if cands and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(cands))
        return draw(stable_hashable_leaves)

    n = draw(st.integers(1, max_nodes))
    for _ in range(n):
        kind = draw(st.sampled_from(NODE_KINDS))
        pool.append(_make_node(draw, kind, child, hchild, schild))

    if allow_cycles and pool:
        for _ in range(draw(st.integers(0, 3))):
            targets = [o for o in pool if type(o) in CYCLE_TARGETS]
            if not targets:
                break
            t = draw(st.sampled_from(targets))
            ref = draw(st.sampled_from(pool))
            if isinstance(t, T.Reduce5):
                t.append(ref)
            elif isinstance(t, (list, collections.deque)):
                if isinstance(t, collections.deque) and t.maxlen is not None:
                    continue
                t.append(ref)
            elif isinstance(t, dict):
                if isinstance(t, collections.Counter):
                    continue
                t[hchild()] = ref
            elif isinstance(t, T.Reduce5AppendOnly):
                t.items.append(ref)
            elif isinstance(t, T.Slotted):
                t.y = ref
            elif isinstance(t, T.GetSetState):
                t.a = ref
            else:
                setattr(t, draw(st.sampled_from(["a", "b", "v", "extra"])), ref)

    root = draw(st.sampled_from(pool))
    shape = draw(st.sampled_from(["node", "node", "list", "tuple", "dict"]))
    if shape == "list":
        return [root] + [draw(st.sampled_from(pool)) for _ in range(draw(st.integers(0, 3)))]
    if shape == "tuple":
        return (root, draw(st.sampled_from(pool)), root)
    if shape == "dict":
        return {"root": root, "again": root, "other": draw(st.sampled_from(pool))}
    return root


def _show(obj):
    try:
        return _repr.repr(obj)
    except Exception as e:  # noqa: BLE001
        return f"<unreprable: {e!r}>"


# --------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------


@settings(DIFF_SETTINGS, max_examples=250)
@given(leaves)
def test_leaves(obj):
    note(_show(obj))
    check_all(obj, fix_imports_variants=(True, False))


@settings(DIFF_SETTINGS, max_examples=250)
@given(st.lists(st.one_of(simple_leaves, st.sampled_from(SPECIAL_CHARS)), max_size=6))
def test_flat_lists_of_scalars(obj):
    note(_show(obj))
    check_all(obj)


@settings(DIFF_SETTINGS, max_examples=300)
@given(graphs())
def test_object_graphs(obj):
    note(_show(obj))
    check_all(obj, fix_imports_variants=(True, False))


@settings(DIFF_SETTINGS, max_examples=100)
@given(graphs())
def test_pickler_memo_matches(obj):
    """Pickler.memo.copy() after a dump: same indices, same graph objects."""
    note(_show(obj))
    for p in PROTOCOLS:
        if run(lambda: pickle.dumps(obj, p))[0] == "ok":
            assert_same_memo(obj, p)


@settings(DIFF_SETTINGS, max_examples=60)
@given(graphs(max_nodes=3, allow_cycles=False, bad=True))
def test_unpicklable_values_raise_same_exception(obj):
    """Graphs with values pickle cannot pickle. turbodill raises what pickle
    raises (generators, Slotted below protocol 2, ...) or, for what it pickles
    by value by design (lambdas, local classes, locks, memoryviews), writes
    bytes pickle.loads reads; everything else stays byte-identical."""
    note(_show(obj))
    check_all(obj, by_value_ok=True)


@settings(DIFF_SETTINGS, max_examples=40)
@given(st.data())
def test_big_containers(data):
    obj = _big_container(data.draw, lambda: data.draw(leaves), lambda: data.draw(stable_hashable_leaves))
    note(f"{type(obj).__name__}: {_show(obj)}")
    check_all(obj)


# --- protocol 5 out-of-band buffers ----------------------------------------


def _np_array(draw):
    kind = draw(st.sampled_from(["1d", "2d", "fortran", "noncontig", "object", "empty", "bool", "big"]))
    dtype = draw(st.sampled_from(["<i4", ">i8", "<f8", "u1", "<c16", "<U3", "V3"]))
    n = draw(st.integers(0, 12))
    if kind == "object":
        return np.array([None, "x", 1, [1]], dtype=object)
    if kind == "empty":
        return np.zeros((0, 3), dtype="<f4")
    if kind == "bool":
        return np.array([True, False] * n, dtype=bool)
    if kind == "big":
        return np.arange(70000, dtype="u1")
    raw = bytes(range(256)) * 2
    itemsize = np.dtype(dtype).itemsize
    a = np.frombuffer(raw[: itemsize * 12], dtype=dtype).copy()
    if kind == "1d":
        return a[:n]
    if kind == "2d":
        return a.reshape(3, 4)
    if kind == "fortran":
        return np.asfortranarray(a.reshape(3, 4))
    return a.reshape(3, 4)[:, ::2]  # non-contiguous


# CPython 3.11 bug (not turbodill's): when the garbage collector clears an
# unreachable cycle holding a memoryview that a PickleBuffer still exports,
# memoryview's tp_clear fails ("memoryview has 1 exported buffer") and the
# interpreter then crashes. Hypothesis keeps examples inside reference cycles
# (tracebacks), so the memoryviews wrapped by PickleBuffers are kept
# reachable from here and are never part of a collected cycle.
_KEEPALIVE = []


@st.composite
def oob_cases(draw):
    items = []
    made = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["pb_bytes", "pb_bytearray", "pb_np", "np", "pb_mv", "again", "plain"]))
        if kind == "again" and made:
            items.append(draw(st.sampled_from(made)))  # the same object twice
            continue
        if kind == "plain":
            items.append(draw(simple_leaves))
            continue
        if kind == "pb_bytes":
            o = pickle.PickleBuffer(draw(bytes_))
        elif kind in ("pb_bytearray", "again"):
            o = pickle.PickleBuffer(draw(bytearrays))
        elif kind == "pb_np":
            o = pickle.PickleBuffer(_np_array(draw))
        elif kind == "pb_mv":
            mv = memoryview(draw(bytearrays))
            _KEEPALIVE.append(mv)
            o = pickle.PickleBuffer(mv)
        else:
            o = _np_array(draw)
        made.append(o)
        items.append(o)
    shape = draw(st.sampled_from(["list", "tuple", "dict", "single"]))
    if shape == "tuple":
        obj = tuple(items)
    elif shape == "dict":
        obj = {i: v for i, v in enumerate(items)}
    elif shape == "single":
        obj = items[0]
    else:
        obj = items
    # What the buffer_callback returns, call by call (cycled). Falsy means
    # "out-of-band"; any truthy value means "serialize in-band".
    decisions = draw(st.lists(st.sampled_from([False, True, None, 0, 1, "", "yes", "raise"]), min_size=1, max_size=8))
    return obj, decisions


class Recorder:
    def __init__(self, decisions):
        self.decisions = decisions
        self.calls = []  # (raw bytes, readonly, format-insensitive shape, returned)
        self.out_of_band = []

    def __call__(self, pb):
        d = self.decisions[len(self.calls) % len(self.decisions)]
        with pb.raw() as m:
            self.calls.append((type(pb), m.tobytes(), m.readonly, d))
        if d == "raise":
            raise ZeroDivisionError("buffer_callback says no")
        if not d:
            self.out_of_band.append(pb)
        return d


def _normalize(o):
    """Structure with every buffer-like replaced by its bytes (for comparisons)."""
    if isinstance(o, np.ndarray):
        if o.dtype == object:
            return ("ndarray", o.shape, [_normalize(x) for x in o.ravel().tolist()])
        # numpy may hand back a non-contiguous big-endian array as native
        # endian: compare values, in one byte order.
        a = o.astype(o.dtype.newbyteorder("<"))
        return ("ndarray", a.dtype.str, a.shape, a.tobytes())
    if isinstance(o, pickle.PickleBuffer):
        with o.raw() as m:
            return ("buffer", m.tobytes())
    if isinstance(o, (bytes, bytearray, memoryview)):
        return ("buffer", bytes(o))
    if isinstance(o, (list, tuple)):
        return [_normalize(x) for x in o]
    if isinstance(o, dict):
        return {k: _normalize(v) for k, v in o.items()}
    if isinstance(o, float) and math.isnan(o):
        return ("nan",)
    return o


@settings(DIFF_SETTINGS, max_examples=200)
@given(oob_cases())
def test_protocol5_out_of_band_buffers(case):
    obj, decisions = case
    note(f"obj={_show(obj)} decisions={decisions}")
    for p in PROTOCOLS:
        # Without a callback: in-band (and PicklingError below protocol 5).
        ref = run(lambda: pickle.dumps(obj, p))
        assert_same_outcome(ref, lambda: turbodill.dumps(obj, p), f"dumps(protocol={p})")

        # With a callback.
        rec_p, rec_t = Recorder(decisions), Recorder(decisions)
        ref = run(lambda: pickle.dumps(obj, p, buffer_callback=rec_p))
        got = assert_same_outcome(
            ref,
            lambda: turbodill.dumps(obj, p, buffer_callback=rec_t),
            f"dumps(protocol={p}, buffer_callback=...)",
        )
        assert rec_t.calls == rec_p.calls, f"buffer_callback calls differ (protocol={p})"

        # Same through Pickler objects.
        rec_p2, rec_t2 = Recorder(decisions), Recorder(decisions)
        ref2 = run(lambda: file_dump(pickle, obj, p, buffer_callback=rec_p2))
        assert_same_outcome(
            ref2,
            lambda: file_dump(turbodill, obj, p, buffer_callback=rec_t2),
            f"Pickler(protocol={p}, buffer_callback=...).dump",
        )
        assert rec_t2.calls == rec_p2.calls, f"Pickler buffer_callback calls differ (protocol={p})"

        if got is not None:
            loaded_t = pickle.loads(got, buffers=rec_t.out_of_band)
            loaded_p = pickle.loads(ref[1], buffers=rec_p.out_of_band)
            assert _normalize(loaded_t) == _normalize(loaded_p)
            assert _normalize(loaded_t) == _normalize(obj)


def test_buffer_callback_needs_protocol_5():
    for p in range(5):
        with pytest.raises(ValueError):
            pickle.dumps([], p, buffer_callback=list.append)
        with pytest.raises(ValueError):
            turbodill.dumps([], p, buffer_callback=list.append)
        with pytest.raises(ValueError):
            pickle.Pickler(io.BytesIO(), p, buffer_callback=list.append)
        with pytest.raises(ValueError):
            turbodill.Pickler(io.BytesIO(), p, buffer_callback=list.append)


# --------------------------------------------------------------------------
# Plain regression tests at the boundaries
# --------------------------------------------------------------------------


def _recursive_tuple():
    lst = []
    t = (lst,)
    lst.append(t)
    return t


def _self_list():
    lst = [1]
    lst.append(lst)
    return lst


def _self_dict():
    d = {"a": 1}
    d["self"] = d
    return d


def _mutual():
    a, b = [], {}
    a.append(b)
    b["a"] = a
    return [a, b, (a, b)]


def _self_plain():
    o = T.Plain()
    o.a = o
    o.b = [o, (o,)]
    return o


def _instances_shadowing_their_reduction():
    """Instances of one class, some of which hold `__reduce_ex__`, `__reduce__`
    or `__getstate__` in their own dict (getattr finds those first), under
    interned keys (attribute assignment) and equal non-interned ones, beside
    dicts with non-interned and non-str keys that shadow nothing."""

    def fresh(text):
        return "".join(list(text))  # equal to `text`, not interned

    plain = T.Plain(0, "plain")
    by_attribute = T.Plain(1, "reduce_ex")
    by_attribute.__reduce_ex__ = functools.partial(_reduce_to_plain, "by attribute")
    by_fresh_key = T.Plain(2, "reduce")
    by_fresh_key.__dict__[fresh("__reduce__")] = functools.partial(_reduce_to_plain, "fresh key", None)
    getstate = T.Plain(3, "getstate")
    getstate.__dict__[fresh("__getstate__")] = functools.partial(dict, a="from getstate")
    other_keys = T.Plain(4, "other keys")
    other_keys.__dict__[fresh("c")] = 5
    other_keys.__dict__[6] = "int key"
    return [plain, by_attribute, plain, by_fresh_key, getstate, other_keys, T.Plain(7, "after")]


def _reduce_to_plain(label, _proto=None):
    return (T.Plain, (label,))


def _self_set_via_instance():
    o = T.Plain()
    s = {o}
    o.a = s
    return s


def _self_frozenset_via_instance():
    o = T.Plain()
    s = frozenset([o])  # one member: identity hashes must not decide the order
    o.a = s
    return (s, o)


def _self_reduce5():
    r = T.Reduce5()
    r.append(r)
    r["me"] = r
    return r


def _shared_many():
    x = [1, 2]
    d = {"k": x}
    return [x, d, x, (x, d), {"again": d}, x]


REGRESSION_CASES = {
    "dict_999": {i: i for i in range(999)},
    "dict_1000": {i: i for i in range(1000)},
    "dict_1001": {i: str(i) for i in range(1001)},
    "dict_2000": {str(i): i for i in range(2000)},
    "dict_2001": {i: None for i in range(2001)},
    "set_999": set(range(999)),
    "set_1000": set(range(1000)),
    "set_1001": set(range(1001)),
    "set_2000": {str(i) for i in range(2000)},
    "frozenset_1000": frozenset(range(1000)),
    "frozenset_1001": frozenset(range(1001)),
    "list_1": [1],
    "list_999": list(range(999)),
    "list_1000": list(range(1000)),
    "list_1001": list(range(1001)),
    "list_2000": [None] * 2000,
    "list_2001": [str(i) for i in range(2001)],
    "tuple_1000": tuple(range(1000)),
    "bytearray_1_byte_twice": [bytearray(b"\x00"), bytearray(b"\x00")],
    "bytearray_1_byte_and_bytes": [b"\xff", bytearray(b"\xff"), "\xff"],
    "tuple_1_2_3_4": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    "listsub_1001": T.ListSub(range(1001)),
    "dictsub_1000": T.DictSub((i, i) for i in range(1000)),
    "ordereddict_1001": collections.OrderedDict((i, i) for i in range(1001)),
    "deque_1000": collections.deque(range(1000)),
    "reduce5_2001": T.Reduce5(range(2001), {i: i for i in range(2001)}),
    "empty_containers": [
        [],
        (),
        {},
        set(),
        frozenset(),
        bytearray(),
        b"",
        "",
        T.ListSub(),
        T.DictSub(),
        collections.OrderedDict(),
        collections.deque(),
        collections.Counter(),
        collections.defaultdict(list),
    ],
    "recursive_tuple": _recursive_tuple(),
    "self_list": _self_list(),
    "self_dict": _self_dict(),
    "mutual_list_dict": _mutual(),
    "self_plain": _self_plain(),
    "instances_shadowing_their_reduction": _instances_shadowing_their_reduction(),
    "set_via_instance": _self_set_via_instance(),
    "frozenset_via_instance": _self_frozenset_via_instance(),
    "self_reduce5": _self_reduce5(),
    "shared_many": _shared_many(),
    "many_100_byte_strings": ["%099d" % i for i in range(2100)],  # > 200 KiB of str
    "many_100_byte_bytes": [b"%099d" % i for i in range(2100)],
    "bytes_70k_in_list": [1, b"x" * 70000, 2],
    "bytes_70k_shared": [b"y" * 70000] * 3,
    "str_70k_in_list": ["a", "\u20ac" * 70000, "b"],
    "bytearray_70k": [bytearray(b"z" * 70000)],
    "bytes_frame_edges": [b"a" * 65535, b"b" * 65536, b"c" * 65537, b"d" * 255, b"e" * 256],
    "str_frame_edges": ["a" * 65535, "b" * 65536, "c" * 65537, "d" * 255, "e" * 256],
    "small_then_big": ["s" * 60000, b"B" * 70000, "t" * 10],
    "surrogates_p0_specials": ["\ud800", "a\udfffb", "\\", "\n\r\x00\x1a", "\\u1234", "\U0010ffff"],
    "ints_boundaries": INT_BOUNDARIES,
    "floats_special": SPECIAL_FLOATS,
    "stdlib_values": [
        datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=TZS[1]),
        datetime.datetime(2021, 11, 7, 1, 30, fold=1),
        datetime.date(1, 1, 1),
        datetime.time(12, 0, tzinfo=datetime.timezone.utc),
        datetime.timedelta(days=-1, microseconds=1),
        decimal.Decimal("-1.5E+1000"),
        decimal.Decimal("NaN"),
        complex(-0.0, math.inf),
        range(0, 2**70, 3),
        slice(1, None, -1),
        collections.OrderedDict(a=1, b=[2]),
        collections.defaultdict(list, {"x": [1]}),
        collections.Counter("abracadabra"),
        collections.deque([1, 2, 3], maxlen=5),
        fractions.Fraction(-3, 7),
    ],
    "instances": [
        T.Plain(1, "x"),
        T.Empty(),
        T.Slotted(1),
        T.Slotted(1, 2),
        T.SlottedWithDict(1, 2),
        T.DC([1], {2: 3}),
        T.FrozenDC(1, (2,)),
        T.ReduceArgs(1, [2]),
        T.Reduce5([1, 2], {"a": 1}, "state"),
        T.Reduce5AppendOnly([1, 2, 3]),
        T.GetSetState(1, 2),
        T.GetSetState(),
        T.GetNewArgs(1, 2),
        T.GetNewArgsEx(1, y=2),
        T.Point(1, 2),
        T.Color.RED,
        T.Color.BIG,
        T.Perm.R | T.Perm.X,
        T.SINGLETON,
        T.Outer.Inner(T.Outer.Inner()),
        T.Outer.Inner.__init__,
        T.Plain.__init__,
    ],
    "globals": GLOBAL_REFS,
}


@pytest.mark.parametrize("name", sorted(REGRESSION_CASES))
def test_regression(name):
    check_all(REGRESSION_CASES[name], fix_imports_variants=(True, False))


def test_default_and_negative_protocol():
    obj = [1, "a", b"b", {"c": (1.5, None)}, T.Plain(1, 2)]
    assert turbodill.dumps(obj) == pickle.dumps(obj)
    assert turbodill.dumps(obj, None) == pickle.dumps(obj, None)
    assert turbodill.dumps(obj, -1) == pickle.dumps(obj, -1)
    assert turbodill.dumps(obj, protocol=-3) == pickle.dumps(obj, protocol=-3)
    assert file_dump(turbodill, obj, None) == file_dump(pickle, obj, None)
    with pytest.raises(ValueError):
        pickle.dumps(obj, 6)
    with pytest.raises(ValueError):
        turbodill.dumps(obj, 6)


def test_clear_memo_between_dumps():
    x = [1, 2, 3]
    obj = [x, x]
    out = {}
    for mod in (pickle, turbodill):
        f = io.BytesIO()
        p = mod.Pickler(f, 4)
        p.dump(obj)
        p.clear_memo()
        p.dump(obj)
        p.dump(x)
        out[mod.__name__] = f.getvalue()
    assert_same_bytes(out["pickle"], out["turbodill"], "dump/clear_memo/dump/dump")


# --- reduce cycles that never terminate -------------------------------------

_SELF_REFERENCE_CHILD = r"""
import pickle, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
sys.path.insert(0, sys.argv[1])
import turbodill, _diff_types as T
case, protocol = sys.argv[2], int(sys.argv[3])
if case == "ListSub":  # below protocol 2: _reconstructor(cls, list, list(self))
    x = T.ListSub(); x.append(x)
elif case == "DictSub":
    x = T.DictSub(); x["self"] = x
elif case == "ReduceArgs":  # __reduce__ -> (cls, (self.a, self.b)) with self.a = self
    x = T.ReduceArgs(); x.a = x
elif case == "GetNewArgs":  # NEWOBJ args contain the object itself
    x = T.GetNewArgs(1, 2); x.x = x
for mod in (pickle, turbodill):
    try:
        mod.dumps(x, protocol)
        print(mod.__name__, "ok", flush=True)
    except Exception as e:
        print(mod.__name__, type(e).__name__, flush=True)
"""


@pytest.mark.parametrize("case,protocol", [("ListSub", 0), ("DictSub", 1), ("ReduceArgs", 4), ("GetNewArgs", 2)])
def test_infinitely_recursive_reduce_raises(case, protocol):
    """An object reachable from its own reduce *args* (not its state) can never
    be pickled: each visit reduces it again. pickle raises RecursionError;
    turbodill must raise too rather than grow its heap work stack forever.
    Run in a child process capped at 512 MiB of address space: growing
    without end is a MemoryError there, or a crash, not a RecursionError."""
    env = dict(os.environ, RUST_BACKTRACE="0")
    proc = _subproc.code(
        _SELF_REFERENCE_CHILD, os.path.dirname(__file__), case, protocol, text=True, env=env, check=False
    )
    out, err, rc = proc.stdout, proc.stderr, proc.returncode
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines.get("pickle") == "RecursionError", out + err[-2000:]
    assert "turbodill" in lines, (
        f"turbodill.dumps did not return (exit status {rc}); pickle raised RecursionError. stderr tail: {err[-500:]!r}"
    )
    assert lines["turbodill"] == "RecursionError", out
