"""turbodill.multiprocessing: the multiprocessing API with turbodill's
pickler, in the parent and in children, for every start method. The script
runs as a fresh ``__main__`` so that what crosses to a child (lambdas,
closures, a ``__main__`` dataclass) can only travel by value."""

import multiprocessing
import pickle
import subprocess
import sys

import pytest

SCRIPT = r"""
import dataclasses, os, pickle, sys, threading
import turbodill.multiprocessing as mp

@dataclasses.dataclass
class Result:
    value: int
    pid: int

def make_adder(n):
    return lambda x: x + n

def run_closure(q, f):
    q.put(f(1))

def relay(inbox, outbox):
    import multiprocessing.reduction   # the stdlib's is untouched in children too
    assert multiprocessing.reduction.ForkingPickler.__bases__ == (pickle.Pickler,)
    f = inbox.get()
    outbox.put(lambda y: f(y) * 10)   # a closure back, over the one received

if __name__ == "__main__":
    method = sys.argv[1]
    ctx = mp.get_context(method)
    assert ctx.get_start_method() == method
    with ctx.Pool(2) as pool:
        assert pool.map(lambda x: x * x, range(6)) == [0, 1, 4, 9, 16, 25]
    q = ctx.Queue()
    offset = 41
    p = ctx.Process(target=lambda: q.put(offset + 1))   # a closure as target
    p.start(); assert q.get(timeout=30) == 42; p.join(30); assert p.exitcode == 0
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=relay, args=(inbox, outbox))
    p.start()
    inbox.put(make_adder(5))
    assert outbox.get(timeout=30)(2) == 70
    p.join(30); assert p.exitcode == 0
    with ctx.Manager() as manager:
        shared = manager.dict()
        shared["f"] = make_adder(3)
        assert shared["f"](4) == 7
    lock = threading.Lock()
    with mp.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        base = 100
        fut = ex.submit(lambda: Result(base + 1, os.getpid()))
        r = fut.result(timeout=60)
        assert isinstance(r, Result) and r.value == 101 and r.pid != os.getpid(), r
        assert list(ex.map(make_adder(2), [1, 2])) == [3, 4]
        assert ex.submit(lambda l: l.locked(), lock).result(timeout=60) is False
    print("ok", method)
"""


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_pool_process_queue_manager_and_executor(method, tmp_path):
    script = tmp_path / "main.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), method], capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["ok", method]


def test_the_stdlib_package_keeps_its_pickler():
    import multiprocessing.connection
    import multiprocessing.queues
    import multiprocessing.reduction

    import turbodill.multiprocessing.connection
    import turbodill.multiprocessing.queues  # noqa: F401  (loaded on first use, as in the stdlib)

    import turbodill.multiprocessing as tmp

    assert multiprocessing.reduction.ForkingPickler.__bases__ == (pickle.Pickler,)
    assert multiprocessing.queues._ForkingPickler is multiprocessing.reduction.ForkingPickler
    assert multiprocessing.connection._ForkingPickler is multiprocessing.reduction.ForkingPickler
    assert tmp.queues._ForkingPickler is tmp.connection._ForkingPickler is tmp.ForkingPickler
    # Shared with the stdlib: one process registry, the same exception classes.
    assert tmp.current_process() is multiprocessing.current_process()
    assert tmp.TimeoutError is multiprocessing.TimeoutError


def test_executor_raises_from_submit_for_what_cannot_be_pickled():
    import turbodill.multiprocessing as tmp

    with tmp.ProcessPoolExecutor(1, mp_context="fork") as ex:
        with pytest.raises(pickle.PicklingError, match="'frame'"):
            ex.submit(len, [sys._getframe()])
