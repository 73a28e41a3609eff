"""A short tour of turbodill: same bytes as pickle, faster, by value what
pickle refuses, no depth limit."""

import pickle
import subprocess
import sys
import time

import turbodill


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    data = {"users": [{"id": i, "name": f"user{i}", "tags": ("a", "b"), "score": i * 0.5} for i in range(50_000)]}
    ours, theirs = turbodill.dumps(data), pickle.dumps(data)
    print(f"same bytes as pickle.dumps: {ours == theirs} ({len(ours):,} bytes)")
    t_ours = best_of(5, lambda: turbodill.dumps(data))
    t_theirs = best_of(5, lambda: pickle.dumps(data))
    print(
        f"dumps of 50k records: turbodill {t_ours * 1e3:.1f} ms, pickle {t_theirs * 1e3:.1f} ms "
        f"({t_ours / t_theirs:.2f}x)"
    )

    scale = 3
    triple = lambda x: x * scale  # noqa: E731  (pickle refuses lambdas)
    payload = turbodill.dumps(triple)
    # A fresh interpreter without site-packages (so without turbodill) loads it.
    code = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read())(14))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], input=payload, capture_output=True, text=False)
    print(f"a lambda, loaded by plain pickle in a fresh interpreter: triple(14) = {out.stdout.decode().strip()}")

    deep = None
    for _ in range(200_000):
        deep = [deep]
    try:
        pickle.dumps(deep)
        stdlib = "ok"
    except RecursionError:
        stdlib = "RecursionError"
    print(f"a list nested 200,000 deep: pickle -> {stdlib}, turbodill -> {len(turbodill.dumps(deep)):,} bytes")


if __name__ == "__main__":
    main()
