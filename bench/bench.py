"""Side-by-side benchmark: turbodill vs C pickle vs dill vs cloudpickle.

Run from the repository root, inside the virtualenv that has turbodill, dill,
cloudpickle and numpy installed::

    python bench/bench.py [--quick] [--memory | --memory-only] [--rounds N] [--only NAME] [--json PATH]

    --quick      3 rounds, shorter timings, and skip the 100 MB workloads (< ~1 min)
    --memory     also measure the peak memory of one dumps call (slow; off by default)
    --memory-only  measure only that (no timing rounds)
    --rounds N   timing rounds per workload (default 7)
    --only NAME  run only the workloads whose name contains NAME (case-insensitive)
    --json PATH  also write the raw medians (and samples) to PATH

Method. Each workload's object is built once. In each round every (library,
operation) pair is timed once, in an order shuffled by ``random.Random`` with a
fixed seed, so that slow drifts of a noisy machine hit all libraries alike.
Each timing calls the operation in a loop long enough to last about 20 ms
(a single call for large workloads) and divides, with the garbage collector
disabled as pyperf does. The tables report the median over rounds. ``loads``
is each library's own ``loads`` applied to the bytes its own ``dumps`` wrote
(``turbodill.loads`` and ``cloudpickle.loads`` are ``pickle.loads``; ``dill``
pickles with the pure-Python ``pickle._Pickler`` and unpickles with a subclass
of the C ``pickle.Unpickler``). The protocol is ``pickle.DEFAULT_PROTOCOL``
except for the out-of-band workloads, which use protocol 5 with a
``buffer_callback`` (and ``loads(..., buffers=...)``).

The first table gives pickle's absolute median times and, for every other
library, its time divided by pickle's (below 1 means faster than pickle). A
cell holds an exception name when that call fails, "n/a" when there is nothing
to load, and an absolute time in parentheses when pickle itself failed so there
is no ratio.

Memory (``--memory``), measured in a separate pass, never while timing:

* tracemalloc peak of one ``dumps`` call: sees only memory allocated through
  Python's allocators. turbodill builds its output in a Rust ``Vec`` (system
  allocator), invisible to tracemalloc, so this column understates turbodill.
* peak RSS growth of one ``dumps`` call, measured in a fresh subprocess per
  (workload, library): ``python bench/bench.py --measure-rss WORKLOAD LIB``.
  The child builds the data, resets the kernel's peak-RSS mark
  (``/proc/self/clear_refs``), reads VmRSS, calls ``dumps`` and reads VmHWM.
  ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used on Linux: it is monotonic
  and, after fork+exec, starts at the *parent's* peak, which here is hundreds
  of MiB; it is only the fallback where /proc is unavailable.

The 100 MB inputs are written to (``b"\\0" * n``, ``ndarray.fill``) rather than
left as lazily mapped zero pages (``bytes(n)``, ``np.zeros``), so that reading
them costs real memory traffic and RSS figures are not skewed by untouched pages.

At the end, each workload is checked once: ``pickle.loads(turbodill.dumps(obj))``
must equal the object, and turbodill's bytes must equal pickle's wherever pickle
can pickle the object. Each mismatch is printed.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import pickle
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

import cloudpickle  # noqa: E402
import dill  # noqa: E402
import numpy as np  # noqa: E402

import turbodill  # noqa: E402
from _bench_types import DC, Plain, Slotted  # noqa: E402

PROTOCOL = pickle.DEFAULT_PROTOCOL
OOB_PROTOCOL = 5
SEED = 20240601
TARGET_SECONDS = 0.020
QUICK_TARGET_SECONDS = 0.010
MiB = 2**20


# --------------------------------------------------------------------------
# Libraries
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Lib:
    name: str
    dumps: Callable[..., bytes]  # dumps(obj, protocol[, buffer_callback=...])
    loads: Callable[..., Any]  # loads(data[, buffers=...])


LIBS = [
    Lib("pickle", pickle.dumps, pickle.loads),
    Lib("turbodill", turbodill.dumps, turbodill.loads),
    Lib("dill", dill.dumps, dill.loads),
    Lib("cloudpickle", cloudpickle.dumps, cloudpickle.loads),
]
LIBS_BY_NAME = {lib.name: lib for lib in LIBS}
BASELINE = "pickle"


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

# bm_pickle: a user-profile dict and a tuple in the style of pyperformance's
# bm_pickle DICT/TUPLE (datetime-free); bm_pickle_list and bm_pickle_dict use
# pyperformance's own LIST and MICRO_DICT.
BM_DICT = {
    "ads_flags": 0,
    "age": 18,
    "bulletin_count": 0,
    "comment_count": 0,
    "country": "BR",
    "encrypted_id": "G9urXXAJwjE",
    "favorite_artists": [
        "Geo Lopes",
        "Ivete Sangalo",
        "Mariah Carey",
        "Mutiny",
        "Diana Sanches",
        "John Mayer",
        "Mariah Carey",
        "Nelly Furtado",
        "Raquel Boleia",
        "Leo Oliveira",
        "Mutiny",
        "Black Eyed Peas",
    ],
    "favorite_authors": ["Sun Tzu"],
    "favorite_bands": [
        "Mutiny",
        "Black Eyed Peas",
        "Raquel Boleia",
        "Mariah Carey",
        "Mutiny",
        "Nelly Furtado",
        "Geo Lopes",
        "Ivete Sangalo",
        "John Mayer",
        "Diana Sanches",
        "Leo Oliveira",
    ],
    "favorite_movies": [
        "Nacho Libre",
        "Napoleon Dynomite",
        "Harry Potter",
        "Wedding Crashers",
        "Donnie Darko",
    ],
    "first_name": "Kyle",
    "gender": "m",
    "last_name": "Mckinley",
    "name": "Kyle Mckinley",
    "phone": "1234567890",
    "photos": [],
    "primary_photo": "http://example.org/photo.jpg",
    "signup_date": "2007-07-18T00:00:00Z",
    "status": "active",
    "subscriber": 0,
    "uid": 1002309887,
    "username": "kyleycapio",
}
BM_TUPLE = (
    [
        265867233,
        265868503,
        265252341,
        265243910,
        265879514,
        266219766,
        266021701,
        265843726,
        265592821,
        265246784,
        265853180,
        45526486,
        265463699,
        265848143,
        265863062,
        265392591,
        265877490,
        265823665,
        265828884,
        265753032,
    ],
    60,
)


def build_bm_list():
    # pyperformance pickle_list: LIST
    return [[list(range(10)), list(range(10))] for _ in range(10)]


def build_bm_dict():
    # pyperformance pickle_dict: MICRO_DICT
    return {key: dict.fromkeys(range(10)) for key in range(100)}


def build_shared_graph():
    """10k small lists, each referenced 10 times from a 100k-element list.

    7919 is prime and coprime with 10_000, so ``i * 7919 % 10_000`` visits every
    node exactly once per 10_000 consecutive ``i``.
    """
    nodes = [[i, str(i)] for i in range(10_000)]
    return [nodes[i * 7919 % 10_000] for i in range(100_000)]


def build_deep_list(depth=50_000):
    obj = []
    for _ in range(depth):
        obj = [obj]
    return obj


def build_touched_bytes():
    return b"\0" * (100 * MiB)  # same value as bytes(100 MiB), but pages touched


def build_touched_bytearray_buffer():
    return pickle.PickleBuffer(bytearray(100 * MiB))  # bytearray(n) memsets


def build_touched_array():
    arr = np.zeros(100 * MiB // 8)
    arr.fill(0.0)
    return arr


def equal_buffers(a, b):
    return bytes(memoryview(a)) == bytes(memoryview(b))


def equal_arrays(a, b):
    return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)


def equal_deep_lists(a, b):
    """``==`` on a 50,000-deep list would itself recurse too deep."""
    while True:
        if type(a) is not list or type(b) is not list or len(a) != len(b):
            return False
        if not a:
            return True
        if len(a) != 1:
            return a == b
        a, b = a[0], b[0]


# By-value workloads: everything below is defined in __main__ (this script),
# so turbodill, cloudpickle and dill pickle it by value.

SCALE = 3


def make_closure(i):
    def add(x):
        return x + i

    return add


def make_nested():
    import json

    def nested(x):
        return json.dumps({"v": math.sqrt(x) * SCALE, "sep": os.sep})

    return nested


class MainPoint:
    def __init__(self, i):
        self.x, self.y, self.label = i, i * 0.5, f"p{i}"

    def norm(self):
        return math.hypot(self.x, self.y)


def same_results(a, b, arg=4):
    return [f(arg) for f in a] == [f(arg) for f in b]


def same_points(a, b):
    return [(p.x, p.y, p.label, p.norm()) for p in a] == [(p.x, p.y, p.label, p.norm()) for p in b]


def build_dynamic_module():
    """A module made at run time (no importable name): a few functions and a class."""
    import types

    mod = types.ModuleType("dynamic_tools")
    exec(
        "import math\n"
        "SCALE = 2\n"
        "def area(r):\n    return math.pi * r * r * SCALE\n"
        "def double(x):\n    return 2 * x\n"
        "class Box:\n"
        "    def __init__(self, w):\n        self.w = w\n"
        "    def volume(self):\n        return double(self.w) ** 3\n",
        mod.__dict__,
    )
    return mod


def same_module(a, b):
    return a.area(2) == b.area(2) and a.Box(3).volume() == b.Box(3).volume()


def build_dataframe():
    """1M rows: numeric, categorical, datetime and str columns (pandas only)."""
    import pandas as pd

    n = 1_000_000
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "value": np.arange(n) * 0.5,
            "kind": pd.Categorical(np.array(["a", "b", "c"])[np.arange(n) % 3]),
            "when": pd.date_range("2020-01-01", periods=n, freq="s"),
            "name": [f"name{i}" for i in range(n)],
        }
    )


def equal_frames(a, b):
    return a.equals(b)


def text_workloads():
    """Distinct strings (one object each), at protocols 4 and 5."""
    shapes = [
        ("200k distinct ASCII str", lambda: [f"{i:08d}" for i in range(200_000)]),
        ("1M distinct ASCII str", lambda: [f"{i:08d}" for i in range(1_000_000)]),
        ("300k distinct non-ASCII str", lambda: [f"é{i:09d}" for i in range(300_000)]),
        ("300k (int, str) tuples", lambda: [(i, f"x{i}") for i in range(300_000)]),
        ("dict 100k distinct str->str", lambda: {f"k{i}": f"v{i}" for i in range(100_000)}),
    ]
    return [
        Workload(f"{name}, protocol {protocol}", build, protocol=protocol)
        for name, build in shapes
        for protocol in (4, 5)
    ]


def pandas_workloads():
    try:
        import pandas  # noqa: F401
    except ImportError:
        return []
    return [
        Workload(
            "DataFrame 1M rows (num, cat, datetime, str), protocol 5",
            build_dataframe,
            protocol=OOB_PROTOCOL,
            big=True,
            equal=equal_frames,
        )
    ]


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[], Any]
    protocol: int = PROTOCOL
    out_of_band: bool = False
    big: bool = False  # skipped by --quick
    equal: Callable[[Any, Any], bool] = lambda a, b: a == b
    # turbodill pickles it by value where pickle goes by reference (or fails):
    # no byte comparison with pickle.
    by_value: bool = False


WORKLOADS = [
    Workload("bm_pickle", lambda: (BM_DICT, BM_TUPLE)),
    Workload("bm_pickle_list", build_bm_list),
    Workload("bm_pickle_dict", build_bm_dict),
    Workload("1M small ints", lambda: [i % 1000 for i in range(1_000_000)]),
    Workload("100k short str", lambda: [f"s{i}" for i in range(100_000)]),
    Workload("dict 100k str->float", lambda: {f"k{i}": i * 0.5 for i in range(100_000)}),
    Workload("100k plain instances", lambda: [Plain(i, f"s{i}", i * 0.5) for i in range(100_000)]),
    Workload(
        "100k __slots__ instances",
        lambda: [Slotted(i, f"s{i}", i * 0.5) for i in range(100_000)],
    ),
    Workload("100k dataclass instances", lambda: [DC(i, f"s{i}", i * 0.5) for i in range(100_000)]),
    Workload("shared graph 10k x 10 refs", build_shared_graph),
    Workload("100 MB bytes in-band", build_touched_bytes, big=True),
    Workload(
        "100 MB bytes out-of-band",
        build_touched_bytearray_buffer,
        protocol=OOB_PROTOCOL,
        out_of_band=True,
        big=True,
        equal=equal_buffers,
    ),
    Workload("100 MB numpy in-band", build_touched_array, big=True, equal=equal_arrays),
    Workload(
        "100 MB numpy out-of-band",
        build_touched_array,
        protocol=OOB_PROTOCOL,
        out_of_band=True,
        big=True,
        equal=equal_arrays,
    ),
    Workload("list nested 50,000 deep", build_deep_list, equal=equal_deep_lists),
    Workload(
        "1,000 distinct lambdas",
        lambda: [eval(f"lambda x: x + {i}") for i in range(1000)],
        equal=same_results,
        by_value=True,
    ),
    Workload("1,000 closures", lambda: [make_closure(i) for i in range(1000)], equal=same_results, by_value=True),
    Workload(
        "nested fn using globals and modules",
        lambda: [make_nested()],
        equal=same_results,
        by_value=True,
    ),
    Workload(
        "__main__ class, 10,000 instances",
        lambda: [MainPoint(i) for i in range(10_000)],
        equal=same_points,
        by_value=True,
    ),
    Workload("dynamic module", build_dynamic_module, equal=same_module, by_value=True),
    *text_workloads(),
    *pandas_workloads(),
]
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}


# --------------------------------------------------------------------------
# Calling a library on a workload
# --------------------------------------------------------------------------


def dump(lib, workload, obj):
    """One ``dumps`` call; returns (payload, out-of-band buffers or None)."""
    if not workload.out_of_band:
        return lib.dumps(obj, workload.protocol), None
    buffers = []
    payload = lib.dumps(obj, workload.protocol, buffer_callback=buffers.append)
    return payload, buffers


def dumps_thunk(lib, workload, obj):
    dumps, protocol = lib.dumps, workload.protocol
    if workload.out_of_band:
        return lambda: dumps(obj, protocol, buffer_callback=[].append)
    return lambda: dumps(obj, protocol)


def loads_thunk(lib, payload, buffers):
    loads = lib.loads
    if buffers is not None:
        return lambda: loads(payload, buffers=buffers)
    return lambda: loads(payload)


def error_name(exc):
    """Exception class name, plus the underlying cause's when it was wrapped."""
    name = type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and type(cause).__name__ != name:
        name += f" ({type(cause).__name__})"
    return name


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def time_loops(fn, loops):
    """Seconds per call of ``fn`` over ``loops`` back-to-back calls, GC off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in itertools.repeat(None, loops):
            fn()
        return (time.perf_counter() - start) / loops
    finally:
        if gc_was_enabled:
            gc.enable()


def calibrate(fn, target, first_call):
    """Number of calls that makes one timing last about ``target`` seconds.

    ``first_call`` is the duration of the (untimed-for-results) warm-up call;
    when it is already long, one call per timing is enough and slow libraries
    are spared extra calibration calls.
    """
    if first_call >= 2 * target:
        return 1
    loops = 1
    while True:
        elapsed = time_loops(fn, loops) * loops
        if elapsed >= target / 5:
            return max(1, math.ceil(loops * target / elapsed)) if elapsed < target else loops
        loops *= 10


@dataclass
class Task:
    lib: str
    op: str  # "dumps" or "loads"
    fn: Callable[[], Any]
    first_call: float  # seconds taken by the warm-up call
    loops: int = 1


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_workload(workload, obj, rounds, target, rng):
    """Time every library on ``obj``; returns {lib: {...}} of medians and notes."""
    results = {lib.name: {"dumps": None, "loads": None} for lib in LIBS}
    n_buffers = {}
    tasks = []
    for lib in LIBS:
        res = results[lib.name]
        try:
            (payload, buffers), first_call = timed(lambda: dump(lib, workload, obj))
        except Exception as exc:  # e.g. RecursionError: recorded in the cell
            res["dumps_error"] = error_name(exc)
            continue
        res["size"] = len(payload)
        if buffers is not None:
            n_buffers[lib.name] = res["buffers"] = len(buffers)
        tasks.append(Task(lib.name, "dumps", dumps_thunk(lib, workload, obj), first_call))
        loads = loads_thunk(lib, payload, buffers)
        try:
            _, first_call = timed(loads)
        except Exception as exc:
            res["loads_error"] = error_name(exc)
            continue
        tasks.append(Task(lib.name, "loads", loads, first_call))

    # A library that returned no buffer where pickle returned some fell back to
    # in-band serialization; flag it so its "out-of-band" time is not misread.
    for name, count in n_buffers.items():
        if count == 0 and n_buffers.get(BASELINE, 0) > 0:
            results[name]["note"] = "in-band"

    for task in tasks:
        task.loops = calibrate(task.fn, target, task.first_call)

    samples = {(t.lib, t.op): [] for t in tasks}
    for _ in range(rounds):
        rng.shuffle(tasks)
        for task in tasks:
            samples[(task.lib, task.op)].append(time_loops(task.fn, task.loops))
    for task in tasks:
        res = results[task.lib]
        res[task.op] = statistics.median(samples[(task.lib, task.op)])
        res[f"{task.op}_samples"] = samples[(task.lib, task.op)]
        res[f"{task.op}_loops"] = task.loops
    return results


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------


def tracemalloc_peak(lib, workload, obj):
    """Peak bytes traced by tracemalloc during one dumps call (or an error name)."""
    gc.collect()
    tracemalloc.start()
    try:
        dump(lib, workload, obj)
        return tracemalloc.get_traced_memory()[1]
    except Exception as exc:
        return error_name(exc)
    finally:
        tracemalloc.stop()


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def measure_rss(workload_name, lib_name):
    """Child side of --measure-rss: print a JSON line about one dumps call."""
    workload, lib = WORKLOADS_BY_NAME[workload_name], LIBS_BY_NAME[lib_name]
    obj = workload.build()
    lib.dumps({"warm": [1, "up", 1.0]}, workload.protocol)  # lazy imports / init
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
        before = _proc_status_kib("VmRSS")
        measure_after = lambda: _proc_status_kib("VmHWM")  # noqa: E731
        method = "VmHWM"
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        measure_after = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
        method = "ru_maxrss"
    result = {"method": method, "before_kib": before}
    try:
        payload, _ = dump(lib, workload, obj)
        result["after_kib"] = measure_after()
        result["size"] = len(payload)
    except Exception as exc:
        result["error"] = error_name(exc)
    print(json.dumps(result))


def rss_delta(workload, lib):
    """Peak RSS growth (bytes) of one dumps call, from a fresh subprocess."""
    cmd = [sys.executable, os.path.abspath(__file__), "--measure-rss", workload.name, lib.name]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"child exit {proc.returncode}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "error" in result:
        return result["error"]
    return max(0, result["after_kib"] - result["before_kib"]) * 1024


def memory_pass(workloads, sizes):
    """Peak memory per (workload, library); fills in ``sizes`` (turbodill's
    output size) where timing did not."""
    results = {}
    for workload in workloads:
        obj = workload.build()
        if sizes.get(workload.name) is None:
            try:
                sizes[workload.name] = len(dump(LIBS_BY_NAME["turbodill"], workload, obj)[0])
            except Exception:
                sizes[workload.name] = None
        row = {}
        for lib in LIBS:
            row[lib.name] = {"tracemalloc_peak": tracemalloc_peak(lib, workload, obj)}
        del obj
        gc.collect()
        for lib in LIBS:
            row[lib.name]["rss_peak_delta"] = rss_delta(workload, lib)
        results[workload.name] = row
        print(f"  memory: {workload.name}", file=sys.stderr, flush=True)
    return results


# --------------------------------------------------------------------------
# Correctness
# --------------------------------------------------------------------------


def check_workload(workload, obj):
    """Mismatch messages for turbodill on ``obj`` (empty list if all good)."""
    problems = []
    turbo = LIBS_BY_NAME["turbodill"]
    try:
        data, buffers = dump(turbo, workload, obj)
    except Exception as exc:
        return [f"{workload.name}: turbodill.dumps raised {error_name(exc)}: {exc}"]
    kwargs = {} if buffers is None else {"buffers": buffers}
    try:
        if not workload.equal(obj, pickle.loads(data, **kwargs)):
            problems.append(f"{workload.name}: pickle.loads(turbodill.dumps(obj)) != obj")
    except Exception as exc:
        problems.append(f"{workload.name}: pickle.loads raised {error_name(exc)}: {exc}")
    if workload.by_value:
        return problems
    try:
        expected, expected_buffers = dump(LIBS_BY_NAME["pickle"], workload, obj)
    except Exception:
        return problems  # pickle cannot pickle it: nothing to compare bytes with
    if data != expected:
        problems.append(f"{workload.name}: turbodill bytes != pickle bytes ({len(data)} vs {len(expected)} bytes)")
    if buffers is not None and [bytes(b) for b in buffers] != [bytes(b) for b in expected_buffers]:
        problems.append(f"{workload.name}: turbodill out-of-band buffers != pickle's")
    return problems


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_size(nbytes):
    for unit, scale in (("MiB", MiB), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} B"


def time_cell(res, op, base):
    """Ratio to the baseline, or an error name / n/a / absolute time."""
    if res.get(op) is None:
        if op == "dumps" and "dumps_error" in res:
            return res["dumps_error"]
        return res.get("loads_error", "n/a")
    note = f" ({res['note']})" if "note" in res else ""
    if base is None:
        return f"({fmt_time(res[op])}){note}"
    return f"{res[op] / base:.2f}{note}"


def markdown_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def timing_table(results):
    others = [lib.name for lib in LIBS if lib.name != BASELINE]
    header = ["workload", "pickle dumps", "pickle loads"]
    for name in others:
        header += [f"{name} dumps x", f"{name} loads x"]
    rows = []
    for workload, libs in results.items():
        base = libs[BASELINE]
        row = [workload]
        for op in ("dumps", "loads"):
            row.append(fmt_time(base[op]) if base.get(op) is not None else time_cell(base, op, None))
        for name in others:
            row += [time_cell(libs[name], op, base.get(op)) for op in ("dumps", "loads")]
        rows.append(row)
    return markdown_table(header, rows)


def memory_table(results, sizes, key):
    header = ["workload", "output size"] + [f"{lib.name} peak" for lib in LIBS]
    rows = []
    for workload, libs in results.items():
        size = sizes.get(workload)
        row = [workload, fmt_size(size) if size is not None else "n/a"]
        for lib in LIBS:
            value = libs[lib.name][key]
            row.append(fmt_size(value) if isinstance(value, int) else value)
        rows.append(row)
    return markdown_table(header, rows)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, skip 100 MB workloads")
    parser.add_argument("--memory", action="store_true", help="also measure dumps peak memory")
    parser.add_argument("--memory-only", action="store_true", help="measure dumps peak memory, no timing")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 7)")
    parser.add_argument("--only", metavar="NAME", help="workload name substring filter")
    parser.add_argument("--json", metavar="PATH", help="write raw medians to PATH")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the shuffled order")
    parser.add_argument("--measure-rss", nargs=2, metavar=("WORKLOAD", "LIB"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def select_workloads(args):
    selected = [w for w in WORKLOADS if not (args.quick and w.big)]
    if args.only:
        selected = [w for w in selected if args.only.lower() in w.name.lower()]
    return selected


def versions():
    return {
        "python": platform.python_version(),
        "turbodill": getattr(turbodill, "__version__", "editable"),
        "dill": dill.__version__,
        "cloudpickle": cloudpickle.__version__,
        "numpy": np.__version__,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.measure_rss:
        measure_rss(*args.measure_rss)
        return 0

    rounds = args.rounds or (3 if args.quick else 7)
    target = QUICK_TARGET_SECONDS if args.quick else TARGET_SECONDS
    workloads = select_workloads(args)
    if not workloads:
        print("no workload matches", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(
        f"# {', '.join(f'{k} {v}' for k, v in versions().items())}; "
        f"{os.cpu_count()} CPUs; protocol {PROTOCOL} (5 for out-of-band); "
        f"{rounds} rounds; median; ratio = time / pickle time",
        flush=True,
    )

    timings, sizes, problems = {}, {}, []
    for workload in [] if args.memory_only else workloads:
        t0 = time.perf_counter()
        obj = workload.build()
        timings[workload.name] = bench_workload(workload, obj, rounds, target, rng)
        problems += check_workload(workload, obj)
        turbo = timings[workload.name]["turbodill"]
        sizes[workload.name] = turbo.get("size", timings[workload.name][BASELINE].get("size"))
        del obj
        gc.collect()
        print(f"  timed: {workload.name} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    if timings:
        print("\n## Time (median; libraries' columns are time / pickle time)\n")
        print(timing_table(timings))

    memory = None
    if args.memory or args.memory_only:
        memory = memory_pass(workloads, sizes)
        print("\n## dumps peak memory: tracemalloc (Python allocators only; misses Rust buffers)\n")
        print(memory_table(memory, sizes, "tracemalloc_peak"))
        print("\n## dumps peak memory: RSS growth in a fresh process (VmHWM - VmRSS before)\n")
        print(memory_table(memory, sizes, "rss_peak_delta"))

    if timings:
        print("\n## Correctness (turbodill)\n")
        for line in problems:
            print(f"MISMATCH {line}")
        if not problems:
            print(f"all {len(workloads)} workloads: round trip OK, bytes identical to pickle's where pickle succeeds")

    elapsed = time.perf_counter() - started
    print(f"\n(total {elapsed:.1f} s)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "versions": versions(),
                    "protocol": PROTOCOL,
                    "rounds": rounds,
                    "seed": args.seed,
                    "timings": timings,
                    "sizes": sizes,
                    "memory": memory,
                    "mismatches": problems,
                    "elapsed_seconds": elapsed,
                },
                f,
                indent=1,
            )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
