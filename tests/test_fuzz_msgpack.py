"""A bounded run of the msgpack decoder fuzzer (fuzz/fuzz_msgpack.py, whose
docstring gives the command for longer runs)."""

import os
import re
import subprocess
import sys

HARNESS = os.path.join(os.path.dirname(__file__), os.pardir, "fuzz", "fuzz_msgpack.py")


def test_fuzz_msgpack_decoder_for_20_seconds(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            HARNESS,
            "-max_total_time=20",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}{os.sep}",  # where a failing input is written
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done, proc.stderr[-4000:]
    assert int(done.group(1)) > 10_000  # it really ran
