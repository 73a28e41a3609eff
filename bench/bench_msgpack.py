"""turbodill.msgpack against ormsgpack, msgpack and pickle, in the same run.

Run from the repository root, in the virtualenv that has turbodill (a release
build: ``pip install .``) and the ``bench`` extras::

    python bench/bench_msgpack.py [--quick] [--rounds N] [--only NAME] [--json PATH]

    --quick      3 rounds and shorter timings (< ~1 min)
    --rounds N   timing rounds per workload (default 7)
    --only NAME  run only the workloads whose name contains NAME (case-insensitive)
    --json PATH  also write the raw medians (and samples) to PATH

Method: bench/bench.py's. Each workload's object is built once. In each round
every (library, operation) pair is timed once, in an order shuffled with a
fixed seed, each timing a loop of about 20 ms with the garbage collector off;
the tables give medians over rounds. ``unpackb`` decodes the bytes the same
library's ``packb`` wrote. msgpack packs with ``use_bin_type=True`` and
unpacks with ``strict_map_key=False``; ormsgpack gets ``OPT_NON_STR_KEYS`` on
the workloads with int keys; pickle uses protocol 5.

The first table gives turbodill.msgpack's median times and its time divided
by each other library's (below 1: turbodill is faster). The bar is 1.5 for
ormsgpack on every workload, both directions; the last column says whether
it is met. Each workload is checked once: ``unpackb(packb(obj)) == obj``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import statistics
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

import msgpack  # noqa: E402
import ormsgpack  # noqa: E402

import turbodill.msgpack as tmsgpack  # noqa: E402
from bench import (  # noqa: E402
    BM_DICT,
    BM_TUPLE,
    QUICK_TARGET_SECONDS,
    SEED,
    TARGET_SECONDS,
    build_bm_dict,
    build_bm_list,
    calibrate,
    fmt_time,
    markdown_table,
    time_loops,
    timed,
)

BAR = 1.5
OPS = ("packb", "unpackb")


def libraries(int_keys):
    """{name: (packb, unpackb)} for one workload."""
    opt = ormsgpack.OPT_NON_STR_KEYS if int_keys else None
    return {
        "turbodill": (tmsgpack.packb, tmsgpack.unpackb),
        "ormsgpack": (
            (lambda o: ormsgpack.packb(o, option=opt)) if opt else ormsgpack.packb,
            (lambda b: ormsgpack.unpackb(b, option=opt)) if opt else ormsgpack.unpackb,
        ),
        "msgpack": (
            lambda o: msgpack.packb(o, use_bin_type=True),
            lambda b: msgpack.unpackb(b, strict_map_key=False),
        ),
        "pickle": (lambda o: pickle.dumps(o, 5), pickle.loads),
    }


def build_records(n=10_000):
    """A list of API-like records: mixed scalars, strings, nested lists and dicts."""
    return [
        {
            "id": i,
            "name": f"user{i}",
            "email": f"user{i}@example.org",
            "score": i * 0.25,
            "active": i % 3 == 0,
            "tags": ["alpha", "beta", f"t{i % 17}"],
            "address": {"city": "Lisbon", "zip": f"{1000 + i % 900}", "geo": [38.7 + i * 1e-5, -9.1]},
            "balance": -i * 3,
            "note": None,
        }
        for i in range(n)
    ]


WORKLOADS = {
    # name: (build, int_keys)
    "10k records (dicts of mixed scalars, nested lists)": (build_records, False),
    "dict 100k str->float": (lambda: {f"k{i}": i * 0.5 for i in range(100_000)}, False),
    "bm_pickle (profile dict, list of ints)": (lambda: [BM_DICT, list(BM_TUPLE[0]), BM_TUPLE[1]], False),
    "bm_pickle_list": (build_bm_list, False),
    "bm_pickle_dict (int keys)": (build_bm_dict, True),
    "100k short str": (lambda: [f"s{i}" for i in range(100_000)], False),
    "1M small ints": (lambda: [i % 1000 for i in range(1_000_000)], False),
}


def bench_workload(obj, int_keys, rounds, target, rng):
    libs = libraries(int_keys)
    tasks, sizes = [], {}
    for name, (pack, unpack) in libs.items():
        payload, first = timed(lambda: pack(obj))
        sizes[name] = len(payload)
        tasks.append([name, "packb", lambda p=pack: p(obj), first])
        _, first = timed(lambda: unpack(payload))
        tasks.append([name, "unpackb", lambda u=unpack, b=payload: u(b), first])
    for task in tasks:
        task.append(calibrate(task[2], target, task[3]))
    samples = {(t[0], t[1]): [] for t in tasks}
    for _ in range(rounds):
        rng.shuffle(tasks)
        for name, op, fn, _first, loops in tasks:
            samples[(name, op)].append(time_loops(fn, loops))
    medians = {key: statistics.median(values) for key, values in samples.items()}
    return {"medians": medians, "samples": samples, "sizes": sizes}


def check(obj):
    return tmsgpack.unpackb(tmsgpack.packb(obj)) == obj


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, shorter timings")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 7)")
    parser.add_argument("--only", metavar="NAME", help="workload name substring filter")
    parser.add_argument("--json", metavar="PATH", help="write raw medians to PATH")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    target = QUICK_TARGET_SECONDS if args.quick else TARGET_SECONDS
    rng = random.Random(SEED)
    results, failures = {}, []
    for name, (build, int_keys) in WORKLOADS.items():
        if args.only and args.only.lower() not in name.lower():
            continue
        obj = build()
        if not check(obj):
            failures.append(name)
        results[name] = bench_workload(obj, int_keys, rounds, target, rng)
        print(f"  {name}", file=sys.stderr, flush=True)

    others = ["ormsgpack", "msgpack", "pickle"]
    header = ["workload", "op", "turbodill", *(f"/ {o}" for o in others), f"bar (<= {BAR}x ormsgpack)"]
    rows = []
    for name, res in results.items():
        m = res["medians"]
        for op in OPS:
            ours = m[("turbodill", op)]
            ratios = [ours / m[(o, op)] for o in others]
            rows.append(
                [name, op, fmt_time(ours), *(f"{r:.2f}" for r in ratios), "ok" if ratios[0] <= BAR else "MISSED"]
            )
    print(f"turbodill.msgpack time, and divided by each library's (rounds={rounds}):\n")
    print(markdown_table(header, rows))
    print("\nPayload sizes (bytes):\n")
    print(
        markdown_table(
            ["workload", "turbodill", *others],
            [[n, *(r["sizes"][lib] for lib in ["turbodill", *others])] for n, r in results.items()],
        )
    )
    print(f"\nversions: ormsgpack {ormsgpack.__version__}, msgpack {msgpack.version}, python {sys.version.split()[0]}")
    if failures:
        print(f"\nROUND-TRIP MISMATCH: {failures}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    n: {
                        "medians": {f"{lib} {op}": v for (lib, op), v in r["medians"].items()},
                        "samples": {f"{lib} {op}": v for (lib, op), v in r["samples"].items()},
                        "sizes": r["sizes"],
                    }
                    for n, r in results.items()
                },
                f,
                indent=1,
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
