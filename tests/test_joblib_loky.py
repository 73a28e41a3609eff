"""joblib's and loky's process pools with turbodill as the loky pickler:
a fresh ``__main__`` script sends closures over a numpy array and over a
``__main__`` object holding a held lock (which cloudpickle, loky's default,
cannot pickle), and the workers send the lock back."""

import os
import subprocess
import sys
import textwrap

import pytest

CLOSURES = """
import sys, threading
import numpy as np

class Guarded:
    def __init__(self):
        self.lock = threading.Lock()
        self.lock.acquire()

def closures():
    a = np.arange(10)
    g = Guarded()
    return (lambda i: int(a.sum()) + i), (lambda i: (g.lock.locked(), g))

def check(sums, guarded):
    assert sums == [45, 46, 47, 48], sums
    assert all(held and type(g).__name__ == "Guarded" and g.lock.locked() for held, g in guarded)
    print("ok")
"""

JOBLIB = (
    CLOSURES
    + """
from joblib import Parallel, delayed
if sys.argv[1] == "set_loky_pickler":
    from joblib.externals.loky import set_loky_pickler
    set_loky_pickler("turbodill")
if __name__ == "__main__":
    total, held = closures()
    parallel = Parallel(n_jobs=2, backend="loky")
    check(parallel(delayed(total)(i) for i in range(4)), parallel(delayed(held)(i) for i in range(4)))
"""
)

LOKY = (
    CLOSURES
    + """
import loky
loky.set_loky_pickler("turbodill")
if __name__ == "__main__":
    total, held = closures()
    with loky.get_reusable_executor(max_workers=2) as ex:
        check(list(ex.map(total, range(4))), list(ex.map(held, range(4))))
"""
)


def run_script(tmp_path, code, *args, env=None):
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert proc.stdout.decode().split() == ["ok"]


@pytest.mark.parametrize("how", ["set_loky_pickler", "LOKY_PICKLER"])
def test_joblib_parallel_with_turbodill_as_loky_pickler(how, tmp_path):
    pytest.importorskip("joblib", reason="joblib is not installed")
    pytest.importorskip("numpy", reason="numpy is not installed")
    run_script(tmp_path, JOBLIB, how, env={"LOKY_PICKLER": "turbodill"} if how == "LOKY_PICKLER" else None)


def test_loky_executor_with_turbodill_as_pickler(tmp_path):
    pytest.importorskip("loky", reason="loky is not installed")
    pytest.importorskip("numpy", reason="numpy is not installed")
    run_script(tmp_path, LOKY)
