"""The parity corpus as a test: every case, defined in __main__, in a function
of an importable module and in a module registered by value, pickled at
protocols 2-5 by turbodill, cloudpickle and dill, loaded in fresh
interpreters and checked by behaviour. It fails when cloudpickle or dill
passes a case that turbodill fails, unless the case says why turbodill
differs on purpose. The table is printed (`pytest -s`) and written to
tests/parity/report.txt."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402

pytest.importorskip("cloudpickle", reason="the corpus compares with cloudpickle (test extra)")
pytest.importorskip("dill", reason="the corpus compares with dill (test extra)")


def test_turbodill_passes_every_case_a_peer_passes():
    results = report.run_corpus()
    text = report.table(results)
    print("\n" + text)
    with open(os.path.join(HERE, "report.txt"), "w") as f:
        f.write(text + "\n")
    unexcused = [
        f"{case.name} [{site}, protocol {protocol}; {'/'.join(winners)} pass]: {outcome}"
        for case, site, protocol, winners, outcome, excuse in report.losses(results)
        if excuse is None
    ]
    assert not unexcused, f"{len(unexcused)} losses:\n" + "\n".join(unexcused)
