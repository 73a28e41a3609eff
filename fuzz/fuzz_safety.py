"""Fuzz turbodill's safe-loading paths with atheris (libFuzzer).

Each input goes through:

- ``turbodill.inspect(data)``: must return a report or raise InspectError,
  and agree with ``pickletools.genops`` (opcode count, size, GLOBAL names)
  whenever both read the input;
- ``turbodill.loads(data, allow="data")``: the C unpickler runs only after
  the static walk accepts; any ``Exception`` is a fine outcome except
  MemoryError (an allocation a length field asked for), and a successful
  load must have been reported data-only;
- the signature check: ``loads(data, key=...)`` on the raw input, and on
  the input signed then modified at one input-chosen byte (must be refused),
  and signed as is (must verify to the same bytes).

A crash (a signal, a Rust panic surfacing as PanicException, which is no
``Exception``), a hang (``-timeout``), memory growth (``-rss_limit_mb``) or a
failed check is a finding: libFuzzer stops and writes the input to a
``crash-*`` file.

Seeds are real payloads: varied data pickled by pickle and turbodill at
protocols 0 to 5, code pickled by value, a numpy array, signed envelopes,
and hostile payloads. ``tests/test_fuzz_safety.py`` runs a bounded fuzz (seeded,
a fixed number of inputs) as part of the test suite. A long run::

    mkdir -p fuzz/corpus
    python fuzz/fuzz_safety.py --write-seeds fuzz/corpus
    python fuzz/fuzz_safety.py fuzz/corpus -max_total_time=3600 -timeout=10 -rss_limit_mb=2048

(``-jobs=N -workers=N`` runs N in parallel; findings are replayed with
``python fuzz/fuzz_safety.py crash-<hash>``.)
"""

import collections
import datetime
import decimal
import hashlib
import pickle
import pickletools
import sys
import uuid

import _harness

atheris = _harness.atheris_or_exit(__doc__)

with atheris.instrument_imports(include=["turbodill", "pickletools"]):
    import pickletools  # noqa: F811 (re-imported instrumented: coverage of opcode shapes)

    import turbodill
    from turbodill import _signing

KEY = b"fuzz key"


def _genops_facts(data):
    """(opcode count, size, GLOBAL/INST arguments) as pickletools reads the
    first pickle, or None when it cannot."""
    count, globals_ = 0, set()
    try:
        for op, arg, pos in pickletools.genops(data):
            count += 1
            if op.name in ("GLOBAL", "INST"):
                globals_.add(arg)  # "module name": the module may hold spaces too
            if op.name == "STOP":
                return count, pos + 1, globals_
    except Exception:
        return None
    return None


def check_inspect(data):
    try:
        report = turbodill.inspect(data)
    except turbodill.InspectError:
        return None
    if not report.signed:
        facts = _genops_facts(data)
        if facts is not None:
            count, size, globals_ = facts
            raw = turbodill.inspect(data, fix_imports=False)  # names as the payload spells them
            assert (raw.opcode_count, raw.size) == (count, size), (raw, facts)
            # pickletools unescapes backslashes in GLOBAL's names, _pickle.c
            # does not.
            for spelled in globals_ if b"\\" not in data else ():
                splits = {spelled[:i] + "." + spelled[i + 1 :] for i, c in enumerate(spelled) if c == " "}
                assert splits & set(raw.globals), (raw.globals, spelled)
    return report


def check_restricted(data, report):
    try:
        turbodill.loads(data, allow="data")
    except MemoryError:
        raise
    except Exception:
        return
    assert report is not None and report.data_only, report


def check_signature(data):
    if len(data) < 2:
        return
    try:
        turbodill.loads(data, key=KEY)
    except MemoryError:
        raise
    except Exception:
        pass
    signed = _signing.sign(data, KEY)
    assert bytes(_signing.verify(signed, [b"other", KEY])) == data
    position = int.from_bytes(hashlib.sha256(data).digest()[:4], "little") % len(signed)
    tampered = bytearray(signed)
    tampered[position] ^= data[0] | 1
    try:
        _signing.verify(bytes(tampered), KEY)
    except turbodill.SignatureError:
        return
    raise AssertionError(f"modified byte {position} of a signed payload verified")


def TestOneInput(data):
    report = check_inspect(data)
    check_restricted(data, report)
    check_signature(data)


class Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def seeds():
    """Real payloads to start from."""
    import numpy as np

    data = [
        None,
        True,
        -(2**70),
        1.5,
        3 - 4j,
        "text é \u20ac",
        b"\x00bytes",
        bytearray(b"ba"),
        [1, [2, [3]]],
        (1, (2, ())),
        {"k": {"n": [None]}},
        {1, 2},
        frozenset({"a"}),
        datetime.datetime(2026, 11, 22, 12, tzinfo=datetime.timezone.utc),
        datetime.timedelta(days=1),
        decimal.Decimal("-1.25"),
        uuid.UUID(int=12345),
        collections.OrderedDict(a=1),
        collections.Counter("abca"),
        collections.deque([1, 2]),
        collections.defaultdict(list, x=[1]),
    ]
    out = []
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        out.append(pickle.dumps(data, protocol))
        out.append(turbodill.dumps(data, protocol))
        out.append(turbodill.dumps(lambda x: x + 1, protocol))
        out.append(pickle.dumps(np.arange(4), protocol))
        out.append(pickle.dumps(Reduce(print, "x"), protocol))
    out.append(pickle.dumps(np.arange(4), 5, buffer_callback=lambda b: False))
    out.append(turbodill.dumps(data, key=KEY))
    out.append(turbodill.dumps(data[:5], 2, key=b"other key"))
    out.append(b"\x80\x04)" + b"\x85" * 3000 + b".")
    out.append(b"\x80\x02\x83\xf0\x7f\x8c\x04true\x85R.")
    out.append(b"cbuiltins\ngetattr\n(cpathlib\nPath\nVtouch\ntR.")
    out.append(b"\x80\x05\x8e" + (1 << 60).to_bytes(8, "little") + b"x")
    out.append(b"\x80\x02Nr\xff\xff\xff\x3f.")
    out.append(b"(Pid\nQ.")
    return out


def write_seeds(directory):
    import os

    os.makedirs(directory, exist_ok=True)
    for seed in seeds():
        with open(os.path.join(directory, hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(sys.argv[2])
    else:
        atheris.Setup(_harness.libfuzzer_argv(sys.argv), TestOneInput)
        atheris.Fuzz()
