"""Child of tests/test_no_crash.py: `turbodill.dumps` on every object it can
reach, at protocols 2 and 5. Every outcome must be bytes or a typed
exception; a crash kills this process, which the parent sees.

Each object's index and type go to fd 2 unbuffered before it is pickled,
so the last line before a crash names the culprit. Output on stdout: one
line per object whose outcome was not bytes or a typed exception, then
`DONE <count>`.
"""

import asyncio
import gc
import importlib
import itertools
import os
import re
import sys
import types

import turbodill
import turbodill.msgpack

TRACE = os.environ.get("TURBODILL_NO_CRASH_TRACE") == "1"

STDLIB = """
abc argparse array ast asyncio base64 bisect bz2 calendar cmath codecs collections
collections.abc concurrent.futures configparser contextlib contextvars copy copyreg csv
ctypes dataclasses datetime decimal difflib dis email email.message enum errno
faulthandler filecmp fnmatch fractions ftplib functools gc getopt gettext glob graphlib
gzip hashlib heapq hmac html html.parser http http.client http.cookiejar inspect io
ipaddress itertools json keyword linecache locale logging logging.handlers lzma mailbox
marshal math mimetypes mmap multiprocessing numbers operator optparse os pathlib pdb
pickle pickletools platform plistlib pprint profile pstats queue quopri random re
reprlib sched secrets select selectors shelve shlex shutil signal smtplib socket
socketserver sqlite3 ssl stat statistics string struct subprocess symtable sysconfig
tarfile tempfile textwrap threading time timeit tokenize tomllib trace traceback
tracemalloc types typing unicodedata unittest unittest.mock urllib.parse
urllib.request uuid warnings weakref wsgiref xml.dom.minidom xml.etree.ElementTree
xml.sax zipfile zipimport zlib zoneinfo _thread _io _collections _functools
_operator _struct _pickle _abc _asyncio _contextvars _csv _json _random _sre
_weakref _heapq _bisect _datetime _decimal _elementtree _lsprof _queue _sha256
_socket _ssl array binascii
"""


def import_all():
    modules = []
    for name in STDLIB.split() + ["numpy"]:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass  # a module this build lacks (tomllib before 3.11, numpy absent)
    return modules


def gen():
    yield 1


async def coro():
    return 1


async def agen():
    yield 1


class Seq:
    def __getitem__(self, i):
        if i > 2:
            raise IndexError
        return i


def iterators():
    """One instance of each iterator-like type we can make."""
    code = compile("x = 1\ny = 2", "<no-crash>", "exec")
    d = {"a": 1}
    out = [
        code.co_lines(),
        code.co_positions(),
        iter(d),
        iter(d.keys()),
        iter(d.values()),
        iter(d.items()),
        reversed(d),
        reversed(d.keys()),
        reversed(d.values()),
        reversed(d.items()),
        d.keys(),
        d.values(),
        d.items(),
        iter({1}),
        iter(frozenset({1})),
        iter([1]),
        reversed([1]),
        iter((1,)),
        iter("ab"),
        iter("\u20ac"),
        iter(b"ab"),
        iter(bytearray(b"ab")),
        iter(range(3)),
        iter(range(2**70)),
        reversed(range(3)),
        reversed(range(2**70)),
        iter(Seq()),
        iter(lambda: 1, 0),
        enumerate([1]),
        zip([1], [2]),
        map(abs, [1]),
        filter(None, [1]),
        reversed("ab"),
        iter(memoryview(b"ab")),
        re.compile("a").scanner("aa"),
        re.finditer("a", "aa"),
        re.match("a", "a"),
        gen(),
        types.SimpleNamespace(),
        types.MappingProxyType(d),
        super(Seq, Seq()),
        sys.flags,
        sys.version_info,
        os.stat("."),
        sys._getframe(),
        (lambda: None).__code__,
    ]
    g = gen()
    next(g)
    out.append(g)
    c = coro()
    out += [c, c.__await__()]
    a = agen()
    out += [a, a.asend(None), a.athrow(ValueError), a.aclose(), anext(a)]
    loop = asyncio.new_event_loop()
    out += [loop, loop.create_future()]
    loop.close()
    out += [
        itertools.count(),
        itertools.cycle([1]),
        itertools.repeat(1),
        itertools.accumulate([1]),
        itertools.chain([1]),
        itertools.chain.from_iterable([[1]]),
        itertools.compress([1], [1]),
        itertools.dropwhile(bool, [1]),
        itertools.filterfalse(None, [1]),
        itertools.islice([1], 1),
        itertools.starmap(abs, [(1,)]),
        itertools.takewhile(bool, [1]),
        itertools.zip_longest([1]),
        itertools.product([1]),
        itertools.permutations([1]),
        itertools.combinations([1], 1),
        itertools.combinations_with_replacement([1], 1),
    ]
    grouped = itertools.groupby([1, 1, 2])
    out += [grouped, next(grouped)[1]]
    tee = itertools.tee([1, 2])
    out += list(tee)
    if hasattr(itertools, "pairwise"):
        out.append(itertools.pairwise([1, 2]))
    if hasattr(itertools, "batched"):
        out.append(itertools.batched([1, 2], 1))
    import collections

    dq = collections.deque([1])
    od = collections.OrderedDict(a=1)
    out += [iter(dq), reversed(dq), iter(od), reversed(od), iter(od.values()), reversed(od.items())]
    import array

    out.append(iter(array.array("i", [1])))
    try:
        raise ValueError("x")
    except ValueError as e:
        out += [e, e.__traceback__]
    if "numpy" in sys.modules:
        import numpy as np

        arr = np.arange(6).reshape(2, 3)
        out += [arr.flat, np.nditer(arr), np.ndenumerate(arr), np.broadcast(arr, arr), iter(arr)]
    return out


def collect(modules):
    objects = {}

    def add(obj):
        objects.setdefault(id(obj), obj)

    for obj in gc.get_objects():
        add(obj)
    for module in modules:
        add(module)
        for value in list(vars(module).values()):
            add(value)
    for obj in iterators():
        add(obj)
    # One level further: what the collected objects refer to (untracked
    # objects such as str, int and most iterators are not in the gc list),
    # class namespaces (descriptors), and every type met.
    for obj in list(objects.values()):
        for referent in gc.get_referents(obj):
            add(referent)
    for obj in list(objects.values()):
        add(type(obj))
        if isinstance(obj, type):
            for value in list(vars(obj).values()):
                add(value)
    return [obj for obj in objects.values() if obj is not objects]


class HookedPickler(turbodill.Pickler):
    def persistent_id(self, obj):
        return None

    def reducer_override(self, obj):
        return NotImplemented


def acceptable(err):
    """A typed exception: an Exception, not a sign of a broken invariant."""
    return isinstance(err, Exception) and not isinstance(err, SystemError)


def main():
    modules = import_all()
    objects = collect(modules)
    hooked = HookedPickler(Sink(), 4, deterministic=True)

    def dump_hooked(obj):
        hooked.clear_memo()
        hooked.dump(obj)
        return b""

    dumpers = [
        ("dumps protocol 2", lambda obj: turbodill.dumps(obj, 2)),
        ("dumps protocol 5", lambda obj: turbodill.dumps(obj, 5)),
        # Hooks and ordered sets: the paths the plain dumps skip.
        ("Pickler with hooks", dump_hooked),
        ("msgpack.packb", turbodill.msgpack.packb),
    ]
    bad = 0
    for index, obj in enumerate(objects):
        if TRACE:
            os.write(2, f"{index} {type(obj).__name__}\n".encode())
        for what, dump in dumpers:
            try:
                result = dump(obj)
            except BaseException as err:  # noqa: BLE001 - judged below
                if not acceptable(err):
                    bad += 1
                    print(f"{type(obj).__name__}, {what}: {type(err).__name__}: {err}"[:300])
                continue
            if type(result) is not bytes:
                bad += 1
                print(f"{type(obj).__name__}, {what}: returned {type(result).__name__}")
    print(f"DONE {len(objects)} {bad}", flush=True)


# ---- the native module's Python-visible API, called with wrong arguments ----


def bad_values():
    import io
    import pickle

    released = memoryview(b"ab")
    released.release()
    return [
        None,
        True,
        0,
        -1,
        -2,
        5,
        6,
        255,
        256,
        2**31,
        2**32 - 1,
        2**32,
        -(2**63),
        2**63,
        2**64,
        10**100,
        -(10**100),
        1.5,
        float("nan"),
        "",
        "x",
        "\ud800",
        b"",
        b"\x80\x05N.",
        b"\xff" * 32,
        bytearray(b"ab"),
        memoryview(b"ab"),
        released,
        pickle.PickleBuffer(b"ab"),
        [],
        [None],
        [("a", 1)],
        (),
        ((),),
        {},
        {1: 2},
        {1: (2**40, 1)},
        {1: (2**32 - 1, 1)},
        {1: (2**31, [])},
        {"a": (-1, None)},
        {1: (0, 1, 2)},
        {1: [0, 1]},
        set(),
        object(),
        int,
        type,
        list,
        lambda *a, **k: None,
        io.BytesIO(),
        sys,
        ValueError("x"),
    ]


def api_calls():
    """`(label, callable)` for every Python-visible function and method of
    `turbodill._native`, on fresh receivers."""

    native = turbodill._native
    pickler = native.Pickler(Sink())
    codec = native.MsgpackCodec(ValueError, ValueError, {}, {})
    calls = [
        ("dumps", native.dumps),
        ("dump", native.dump),
        ("_forget_type_caches", native._forget_type_caches),
        ("inspect_opcodes", native.inspect_opcodes),
        ("Pickler", native.Pickler),
        ("Pickler.__new__", lambda *a, **k: native.Pickler.__new__(native.Pickler, *a, **k)),
        ("Pickler.__init__", pickler.__init__),
        ("Pickler.dump", pickler.dump),
        ("Pickler.clear_memo", pickler.clear_memo),
        ("Pickler.fast=", lambda *a, **k: setattr(pickler, "fast", a[0] if a else None)),
        ("Pickler.memo= then dump", lambda *a, **k: prime_and_dump(pickler, a)),
        ("PicklerMemoProxy", native.PicklerMemoProxy),
        ("PicklerMemoProxy.copy", pickler.memo.copy),
        ("PicklerMemoProxy.clear", pickler.memo.clear),
        ("PicklerMemoProxy.__len__", pickler.memo.__len__),
        ("_session_pickle_entries", native._session_pickle_entries),
        ("_session_pack_header", native._session_pack_header),
        ("_session_header_size", native._session_header_size),
        ("_session_read_header", native._session_read_header),
        ("MsgpackCodec", native.MsgpackCodec),
        ("MsgpackCodec.packb", codec.packb),
        ("MsgpackCodec.unpackb", codec.unpackb),
        ("UnpicklableError", native.UnpicklableError),
        ("InspectError", native.InspectError),
    ]
    return pickler, calls


KEYWORDS = [
    "protocol",
    "byref",
    "fmode",
    "recurse",
    "fix_imports",
    "buffer_callback",
    "deterministic",
    "key",
    "file",
    "obj",
    "nonexistent",
]


def prime_and_dump(pickler, args):
    """Prime the memo with `args[0]`, then dump objects it may hold."""
    memo = args[0] if args else None
    try:
        pickler.memo = memo
    finally:
        pickler.dump([args, memo, 1, [], "x"])


class Sink:
    def write(self, data):
        return len(data)


class Point(tuple):
    """A tuple subclass: a NamedTuple as far as the codec is told."""


class Plain:
    pass


class Items(list):
    pass


class Wide(int):
    pass


def registry_cases():
    """MsgpackCodec given registries that lie: every entry shape the codec
    reads, for a class that is not what its entry says."""
    import enum

    import turbodill.msgpack as shim

    class Color(enum.Enum):
        RED = 1

    entries = [
        ("n", 0, ()),
        ("n", 0, ("a", 1)),
        ("n", 0, "ab"),
        ("n", 0, None),
        ("n", 1, ()),
        ("n", 1, ("a",)),
        ("n", 2, ()),
        ("n", 3, ()),
        ("n", -1, ()),
        ("n", 2**70, ()),
        (1, 1, ()),
        ("n",),
        (),
        "n",
        None,
        ["n", 1, ()],
    ]
    import collections
    import dataclasses

    Pair = collections.namedtuple("Pair", "a b")

    @dataclasses.dataclass
    class Data:
        a: int = 1

    subjects = [
        Plain(),
        Items(range(100)),
        Wide(10**300),
        [1, 2],
        {"a": 1},
        Point((1, 2)),
        Color.RED,
        (1, 2),
        5,
        Data(),
        Pair(1, 2),
    ]
    # Payloads naming registered classes "n", "c" and "o", decoded below
    # with registries that say otherwise.
    for cls, name in ((Pair, "n"), (Color, "c"), (Data, "o")):
        shim.register(cls, name)
    payloads = [shim.packb([Pair(1, 2), Color.RED, Data()]), shim.packb(Data()), shim.packb(Pair(1, 2))]
    for cls in (Pair, Color, Data):
        shim.unregister(cls)
    for entry in entries:
        for subject in subjects:
            by_type = {type(subject): entry}
            yield "packb registry", turbodill._native.MsgpackCodec(ValueError, ValueError, by_type, {}).packb, subject
            # The shim's own registry, as a user could edit it.
            shim._by_type.clear()
            shim._by_type.update(by_type)
            yield "shim packb registry", shim.packb, [subject, subject]
            shim._by_type.clear()
        for cls in (Plain, Point, Color, Data, list, tuple, int, 1, None):
            lie = (cls,) + entry[1:] if isinstance(entry, tuple) else entry
            by_name = {"n": lie, "c": lie, "o": lie}
            codec = turbodill._native.MsgpackCodec(ValueError, ValueError, {}, by_name)
            for payload in payloads:
                yield "unpackb registry", codec.unpackb, payload


def api_main():
    import random

    values = bad_values()
    pickler, calls = api_calls()
    rng = random.Random(1234)
    bad = count = 0

    def attempt(label, fn, args, kwargs):
        nonlocal bad, count
        count += 1
        if TRACE:
            os.write(2, f"{label} {args!r:.200} {kwargs!r:.200}\n".encode())
        try:
            fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - judged below
            if not acceptable(err):
                bad += 1
                print(f"{label}{args!r:.100} {kwargs!r:.100}: {type(err).__name__}: {err}"[:300])

    for label, fn in calls:
        # A pickler writing into a file it also pickles doubles it per dump.
        pickler.__init__(Sink())
        attempt(label, fn, (), {})
        for a in values:
            attempt(label, fn, (a,), {})
            attempt(label, fn, (1, a), {})
            for keyword in KEYWORDS:
                attempt(label, fn, (1,), {keyword: a})
                attempt(label, fn, (1, io_file()), {keyword: a})
        for _ in range(400):
            args = tuple(rng.choice(values) for _ in range(rng.randrange(2, 6)))
            attempt(label, fn, args, {})
    for label, fn, arg in registry_cases():
        attempt(label, fn, (arg,), {})
    print(f"DONE {count} {bad}", flush=True)


def io_file():
    import io

    return io.BytesIO()


if __name__ == "__main__":
    if sys.argv[1:] == ["api"]:
        api_main()
    else:
        main()
