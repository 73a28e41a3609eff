"""Suspended generators: dump and load time of one generator with 100
locals, and of 10,000 suspended generators in one payload.

    python bench/bench_generators.py [--rounds N]

No other pickler saves a suspended generator, so there is nothing to
compare with; the table gives turbodill's times (medians over rounds) and
payload sizes. The generators are defined here, in ``__main__``, so their
function goes by value once per payload (the 10,000 share it).
"""

import argparse
import pickle
import statistics

import turbodill
from bench import fmt_size, fmt_time, markdown_table, time_loops


def wide_generator():
    """A generator whose frame holds 100 locals, suspended in a loop."""
    names = [f"v{i}" for i in range(100)]
    body = "\n".join(f"    {n} = {i} * k" for i, n in enumerate(names))
    source = f"def wide(k):\n{body}\n    for step in range(10):\n        yield {' + '.join(names)}\n"
    namespace = {"__name__": "__main__"}
    exec(source, namespace)
    gen = namespace["wide"](3)
    next(gen)
    return gen


def task(i, shared):
    total = 0
    for step in range(100):
        total += yield (i, step, shared["ticks"])
    return total


def many_generators(n=10_000):
    shared = {"ticks": 0}
    tasks = [task(i, shared) for i in range(n)]
    for t in tasks:
        next(t)
        t.send(1)
    return tasks


def measure(obj, rounds, loops):
    data = turbodill.dumps(obj)
    dumps = [time_loops(lambda: turbodill.dumps(obj), loops) for _ in range(rounds)]
    loads = [time_loops(lambda: pickle.loads(data), loops) for _ in range(rounds)]
    return statistics.median(dumps), statistics.median(loads), len(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for label, obj, loops in [
        ("1 generator, 100 locals", wide_generator(), 200),
        ("10,000 generators, one payload", many_generators(), 1),
    ]:
        dump, load, size = measure(obj, args.rounds, loops)
        rows.append([label, fmt_time(dump), fmt_time(load), fmt_size(size)])
    print(markdown_table(["workload", "dumps", "loads", "size"], rows))


if __name__ == "__main__":
    main()
