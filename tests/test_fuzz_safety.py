"""A bounded run of the atheris fuzzer over inspect, restricted loading and
the signature check (``fuzz/fuzz_safety.py``; its docstring has the command
for long runs). It passes when every input ended in a typed exception or a
load: no crash, hang, runaway memory or failed check."""

import pathlib
import re
import subprocess
import sys

import pytest

atheris = pytest.importorskip("atheris")

HARNESS = pathlib.Path(__file__).parent.parent / "fuzz" / "fuzz_safety.py"
SECONDS = 25


def test_fuzz_safety_bounded(tmp_path):
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, str(HARNESS), "--write-seeds", str(corpus)], check=True)
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=8192",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    findings = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(p.name for p in tmp_path.glob("timeout-*"))
    tail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("INFO: Instrumenting"))[-4000:]
    assert proc.returncode == 0 and not findings, f"{findings}\n{tail}"
    runs = int(re.search(r"Done (\d+) runs", proc.stderr).group(1))
    assert runs > 1000, tail
