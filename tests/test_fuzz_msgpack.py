"""A bounded run of the msgpack decoder fuzzer (fuzz/fuzz_msgpack.py, whose
docstring gives the command for longer runs), and the command line both
harnesses share."""

import importlib.util
import os
import re
import sys

import pytest

import _subproc

FUZZ = os.path.join(os.path.dirname(__file__), os.pardir, "fuzz")
HARNESS = os.path.join(FUZZ, "fuzz_msgpack.py")
RUNS = 2_000_000
requires_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris (the fuzzing engine) is not installed"
)


@requires_atheris
def test_fuzz_msgpack_decoder_bounded(tmp_path):
    proc = _subproc.python(
        [
            HARNESS,
            # A fixed run, the same inputs every time: a regression check that
            # cannot turn red at random, nor by the machine's speed.
            "-seed=1",
            f"-runs={RUNS}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}{os.sep}",  # where a failing input is written
        ],
        text=True,
        timeout=300,
    )
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done, proc.stderr[-4000:]
    assert int(done.group(1)) == RUNS  # it really ran


@pytest.mark.parametrize("harness", ["fuzz_msgpack.py", "fuzz_safety.py"])
def test_harness_help_describes_it_without_fuzzing(harness):
    proc = _subproc.python([os.path.join(FUZZ, harness), "--help"], text=True, timeout=60)
    assert proc.stdout.startswith("Fuzz turbodill") and "a run stops after 60 s" in proc.stdout
    assert "INFO:" not in proc.stderr  # libFuzzer never started


def test_harness_runs_are_time_limited_by_default():
    sys.path.insert(0, FUZZ)
    try:
        import _harness
    finally:
        sys.path.remove(FUZZ)
    assert _harness.libfuzzer_argv(["h.py", "corpus"]) == ["h.py", "corpus", "-max_total_time=60"]
    for limit in ("-max_total_time=5", "-runs=100"):
        assert _harness.libfuzzer_argv(["h.py", limit]) == ["h.py", limit]
