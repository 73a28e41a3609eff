"""A long computation that survives being killed: the computation is a
generator, and every few steps the suspended generator itself is pickled to
a checkpoint file. Run it, kill it (even with SIGKILL), run it again: it
continues from the last checkpoint and ends with the same result as a run
that was never interrupted.

    python examples/checkpoint.py STATE_FILE [--steps N] [--every K]
"""

import argparse
import os
import random
import sys

import turbodill


def estimate_pi(steps, seed=2024):
    """Monte Carlo estimate of pi, one sample per step. Yields the step
    number after each; returns the estimate. Its state is in its frame: the
    loop's range iterator, the random generator, the counters."""
    rng = random.Random(seed)
    inside = 0
    for i in range(steps):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
        yield i + 1
    return 4 * inside / steps


def save_checkpoint(path, computation):
    """Write atomically: a kill mid-write leaves the previous checkpoint."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        turbodill.dump(computation, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run(path, steps, every):
    if os.path.exists(path):
        with open(path, "rb") as f:
            computation = turbodill.load(f)
        print("resumed from checkpoint", flush=True)
    else:
        computation = estimate_pi(steps)
    try:
        while True:
            done = next(computation)
            if done % every == 0:
                save_checkpoint(path, computation)
                print("checkpoint", done, flush=True)
    except StopIteration as finished:
        result = finished.value
    if os.path.exists(path):
        os.remove(path)
    print("result", result, flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_file")
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    args = parser.parse_args(argv)
    run(args.state_file, args.steps, args.every)


if __name__ == "__main__":
    sys.exit(main())
