"""Behaviour of the native pickler beyond byte-for-byte parity: depth,
hooks, errors, buffers, files, mutation during pickling."""

import collections
import copyreg
import io
import pickle
import sys
import threading

import numpy as np
import pytest

import turbodill

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class Node:
    def __init__(self, nxt):
        self.next = nxt


def nest(make, depth):
    obj = None
    for _ in range(depth):
        obj = make(obj)
    return obj


def depth_of(obj, child):
    depth = 0
    while obj is not None:
        obj = child(obj)
        depth += 1
    return depth


# ---- depth -------------------------------------------------------------------

DEEP = 1_000_000


@pytest.mark.parametrize(
    "make, child",
    [
        (lambda x: [x], lambda o: o[0]),
        (lambda x: {"k": x}, lambda o: o["k"]),
        (lambda x: (x,), lambda o: o[0]),
        (Node, lambda o: o.next),
    ],
    ids=["list", "dict", "tuple", "instance"],
)
def test_million_levels_deep(make, child):
    data = turbodill.dumps(nest(make, DEEP))
    assert depth_of(pickle.loads(data), child) == DEEP


def test_deep_graph_under_a_high_recursion_limit_and_a_small_thread_stack():
    # Where a recursive pickler with a raised limit overflows the C stack.
    obj = nest(lambda x: [x, {"a": (x,)}], 50_000)
    result = {}

    def work():
        result["data"] = turbodill.dumps(obj)

    old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(1_000_000)
    threading.stack_size(256 * 1024)
    try:
        t = threading.Thread(target=work)
        t.start()
        t.join()
    finally:
        sys.setrecursionlimit(old_limit)
        threading.stack_size(old_size)
    assert result["data"].startswith(b"\x80\x04")
    assert depth_of(pickle.loads(result["data"]), lambda o: o[0]) == 50_000


def test_deep_pickle_matches_stdlib_where_stdlib_can():
    obj = nest(lambda x: [x, (x,), {"v": x}], 150)
    for proto in PROTOCOLS:
        assert turbodill.dumps(obj, proto) == pickle.dumps(obj, proto)


# ---- mutation while pickling ----------------------------------------------------


class Appender:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        self.target.append(len(self.target))
        return (int, (7,))


class DictMutator:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        self.target[object()] = 1
        return (int, (7,))


def test_list_growing_while_pickled_gives_a_loadable_result():
    items = []
    items.extend([Appender(items), 1])
    data = turbodill.dumps(items)
    loaded = pickle.loads(data)
    assert loaded[:2] == [7, 1]


def test_dict_changing_size_while_pickled_is_a_clean_error():
    target = {}
    target.update({"a": DictMutator(target), "b": 1})
    with pytest.raises(RuntimeError, match="changed size"):
        turbodill.dumps(target)


def test_set_changing_size_while_pickled_is_a_clean_error():
    class SetMutator:
        def __reduce__(self):
            box.add(object())
            return (int, (1,))

    box = {SetMutator(), 2, 3}
    with pytest.raises(RuntimeError, match="changed size"):
        turbodill.dumps(box)


# ---- errors ------------------------------------------------------------------------


class Config:
    def __init__(self):
        self.handlers = [1, 2, sys._getframe()]


def test_error_names_the_path_in_the_graph():
    with pytest.raises(turbodill.UnpicklableError) as info:
        turbodill.dumps({"config": Config()})
    err = info.value
    assert isinstance(err, pickle.PicklingError) and isinstance(err, TypeError)
    assert "cannot pickle 'frame' object" in str(err)
    assert err.__notes__ == ["when pickling obj['config'].handlers[2]"]


def test_error_in_a_reduce_keeps_its_type_and_gets_a_path():
    class Failing:
        def __reduce__(self):
            raise ValueError("nope")

    with pytest.raises(ValueError, match="nope") as info:
        turbodill.dumps([(0, {"x": [Failing()]})])
    assert info.value.__notes__ == ["when pickling obj[0][1]['x'][0]"]


@pytest.mark.parametrize(
    "reduce_value, message",
    [
        ((int,), "2 through 6 elements"),
        (("not callable", ()), "must be callable"),
        ((int, [1]), "must be a tuple"),
        ((list, (), None, [1]), "must be an iterator"),
        ((dict, (), None, None, {1: 2}), "must be an iterator"),
        (42, "string or tuple"),
    ],
)
def test_malformed_reduce_values_are_picklingerrors(reduce_value, message):
    class Bad:
        def __reduce__(self):
            return reduce_value

    with pytest.raises(pickle.PicklingError, match=message):
        turbodill.dumps(Bad())
    with pytest.raises(pickle.PicklingError, match=message):
        pickle.dumps(Bad())


def test_pickler_without_init_is_an_error():
    class Lazy(turbodill.Pickler):
        def __init__(self):
            pass

    with pytest.raises(pickle.PicklingError, match="__init__"):
        Lazy().dump(1)


def test_bad_protocols_and_files():
    with pytest.raises(ValueError):
        turbodill.dumps(1, 6)
    with pytest.raises(TypeError):
        turbodill.dump(1, object())
    with pytest.raises(ValueError, match="buffer_callback"):
        turbodill.dumps(1, 4, buffer_callback=list.append)


# ---- hooks, compared with the C pickler -------------------------------------------------


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def reduce_point(p):
    return (Point, (p.y, p.x))


def both_picklers(configure, obj, proto=4):
    out = []
    for base in (pickle.Pickler, turbodill.Pickler):
        cls = configure(base)
        f = io.BytesIO()
        cls(f, proto).dump(obj)
        out.append(f.getvalue())
    return out


def test_persistent_id_subclass():
    def configure(base):
        class P(base):
            def persistent_id(self, obj):
                return ("pid", obj.x) if isinstance(obj, Point) else None

        return P

    for proto in PROTOCOLS:
        ref, ours = both_picklers(configure, [Point(1, 2), "x", Point(3, 4)], proto)
        assert ours == ref


def test_reducer_override_subclass():
    def configure(base):
        class P(base):
            def reducer_override(self, obj):
                return (str, ("point",)) if isinstance(obj, Point) else NotImplemented

        return P

    ref, ours = both_picklers(configure, [Point(1, 2), len, {1: Point(0, 0)}])
    assert ours == ref
    assert pickle.loads(ours) == ["point", len, {1: "point"}]


def test_dispatch_table_on_class_instance_and_mutated_in_place():
    obj = [Point(1, 2), 3 + 4j]

    def on_class(base):
        class P(base):
            dispatch_table = {Point: reduce_point}

        return P

    ref, ours = both_picklers(on_class, obj)
    assert ours == ref
    assert pickle.loads(ours)[0].x == 2

    # Set on the instance after __init__ (loky, multiprocess).
    def on_instance(base):
        def make(f, proto):
            p = base(f, proto)
            p.dispatch_table = collections.ChainMap({Point: reduce_point}, copyreg.dispatch_table)
            return p

        return make

    chained_ref, chained = both_picklers(on_instance, obj)
    assert chained == chained_ref != ref

    # A class-level table mutated after the class was made (Ray).
    class Mutated(turbodill.Pickler):
        dispatch_table = {}

    Mutated.dispatch_table[Point] = reduce_point
    f = io.BytesIO()
    Mutated(f).dump(obj)
    assert f.getvalue() == ref


class WithSetter:
    def __reduce__(self):
        return (WithSetter, (), {"a": 1}, None, None, WithSetter.set_state)

    @staticmethod
    def set_state(obj, state):
        obj.__dict__.update(state)


class KeywordOnly:
    def __new__(cls, *, size):
        obj = super().__new__(cls)
        obj.size = size
        return obj

    def __getnewargs_ex__(self):
        return (), {"size": self.size}


def test_state_setter_and_newobj_ex():
    for proto in PROTOCOLS:
        for obj in (WithSetter(), KeywordOnly(size=3)):
            try:
                ref = pickle.dumps(obj, proto)
            except Exception as e:
                with pytest.raises(type(e)):
                    turbodill.dumps(obj, proto)
                continue
            assert turbodill.dumps(obj, proto) == ref
    assert pickle.loads(turbodill.dumps(WithSetter(), 5)).a == 1
    assert pickle.loads(turbodill.dumps(KeywordOnly(size=3), 2)).size == 3
    assert b"\x92" in turbodill.dumps(KeywordOnly(size=3), 4)  # NEWOBJ_EX


def test_memo_survives_between_dumps_and_can_be_cleared_or_primed():
    f = io.BytesIO()
    p = turbodill.Pickler(f, 2)
    shared = ["abc"]
    p.dump(shared)
    first = f.getvalue()
    p.dump(shared)
    assert f.getvalue()[len(first) :] == b"\x80\x02h\x00."
    assert len(p.memo) == 2 and len(p.memo.copy()) == 2
    p.memo.clear()
    assert len(p.memo) == 0
    primed = turbodill.Pickler(io.BytesIO(), 2)
    primed.memo = {1: (0, shared)}
    assert len(primed.memo) == 1


def test_fast_mode_writes_no_memo_and_rejects_cycles():
    f = io.BytesIO()
    p = turbodill.Pickler(f, 4)
    p.fast = True
    s = "shared"
    p.dump([s, s])
    assert b"\x94" not in f.getvalue()  # no MEMOIZE
    cyclic = []
    for _ in range(100):
        cyclic = [cyclic]
    cyclic[0][0].append(cyclic)
    p2 = turbodill.Pickler(io.BytesIO(), 4)
    p2.fast = True
    with pytest.raises(ValueError, match="fast mode"):
        p2.dump(cyclic)


# ---- buffers and files -------------------------------------------------------------------


def test_out_of_band_numpy_is_zero_copy():
    arr = np.arange(1_000_000, dtype=np.float64)
    buffers = []
    data = turbodill.dumps(arr, 5, buffer_callback=buffers.append)
    ref_buffers = []
    assert data == pickle.dumps(arr, 5, buffer_callback=ref_buffers.append)
    assert len(data) < 1000 and len(buffers) == 1
    view = buffers[0].raw()
    assert np.frombuffer(view, dtype=np.float64).__array_interface__["data"][0] == arr.__array_interface__["data"][0]
    loaded = pickle.loads(data, buffers=buffers)
    assert np.array_equal(loaded, arr)


def test_picklebuffer_in_band_and_readonly():
    for payload in (b"x" * 100, bytearray(b"y" * 70_000)):
        obj = [pickle.PickleBuffer(payload), pickle.PickleBuffer(payload)]
        assert turbodill.dumps(obj, 5) == pickle.dumps(obj, 5)
    with pytest.raises(pickle.PicklingError):
        turbodill.dumps(pickle.PickleBuffer(b"x"), 4)


class RecordingFile:
    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_dump_to_file_streams_the_same_bytes_and_chunks(proto):
    obj = [b"x" * 200_000, list(range(50_000)), "y" * 70_000, {"k": 1}]
    ours, ref = RecordingFile(), RecordingFile()
    turbodill.dump(obj, ours, proto)
    pickle.dump(obj, ref, proto)
    assert ours.chunks == ref.chunks


def test_dumps_is_reentrant_from_hooks():
    class Nested(turbodill.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Point):
                return turbodill.dumps((obj.x, obj.y))
            return None

    f = io.BytesIO()
    Nested(f).dump([Point(1, 2)])

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            return pickle.loads(pid)

    assert Loader(io.BytesIO(f.getvalue())).load() == [(1, 2)]
