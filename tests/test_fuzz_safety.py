"""A bounded run of the atheris fuzzer over inspect, restricted loading and
the signature check (``fuzz/fuzz_safety.py``; its docstring has the command
for long runs). It passes when every input ended in a typed exception or a
load: no crash, hang, runaway memory or failed check."""

import importlib.util
import pathlib
import re

import pytest

import _subproc

HARNESS = pathlib.Path(__file__).parent.parent / "fuzz" / "fuzz_safety.py"
# A fixed run, the same inputs every time: a regression check that cannot
# turn red at random, nor by the machine's speed (longer, random runs: the harness).
RUNS = 300_000


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris (the fuzzing engine) is not installed")
def test_fuzz_safety_bounded(tmp_path):
    corpus = tmp_path / "corpus"
    _subproc.python([HARNESS, "--write-seeds", corpus])
    proc = _subproc.python(
        [
            HARNESS,
            corpus,
            "-seed=1",
            f"-runs={RUNS}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=8192",
            f"-artifact_prefix={tmp_path}/",
        ],
        text=True,
        timeout=600,
        check=False,
    )
    findings = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(p.name for p in tmp_path.glob("timeout-*"))
    tail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("INFO: Instrumenting"))[-4000:]
    assert proc.returncode == 0 and not findings, f"{findings}\n{tail}"
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done and int(done.group(1)) == RUNS, tail
