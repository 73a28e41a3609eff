"""A short tour of turbodill: same bytes as pickle, faster, no depth limit."""

import pickle
import time
from dataclasses import dataclass

import turbodill


@dataclass
class Point:
    x: float
    y: float
    label: str


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    data = {"points": [Point(i, i / 2, f"p{i}") for i in range(50_000)], "tags": {"a", "b"}}
    ours, theirs = turbodill.dumps(data), pickle.dumps(data)
    print(f"same bytes as pickle.dumps: {ours == theirs} ({len(ours):,} bytes)")
    print(f"pickle.loads reads it back: {pickle.loads(ours) == data}")

    t_ours = best_of(5, lambda: turbodill.dumps(data))
    t_theirs = best_of(5, lambda: pickle.dumps(data))
    print(f"dumps of 50k dataclass instances: turbodill {t_ours * 1e3:.1f} ms, "
          f"pickle {t_theirs * 1e3:.1f} ms ({t_ours / t_theirs:.2f}x)")

    deep = None
    for _ in range(200_000):
        deep = [deep]
    try:
        pickle.dumps(deep)
        stdlib = "ok"
    except RecursionError:
        stdlib = "RecursionError"
    print(f"a list nested 200,000 deep: pickle -> {stdlib}, "
          f"turbodill -> {len(turbodill.dumps(deep)):,} bytes")


if __name__ == "__main__":
    main()
