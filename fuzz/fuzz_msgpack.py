"""Fuzz turbodill.msgpack's decoder with atheris.

Every input must end in a decoded object or a ``DecodeError``: any other
exception, a crash, a hang (``-timeout``) or runaway memory
(``-rss_limit_mb``) is a finding. A decoded object must encode again, and
that document decode again. (Its bytes may differ: a set's iteration order
depends on the order its items were inserted in.)

The native decoder is not instrumented for coverage, so the harness does its
own structure-aware mutation: most inputs are real payloads (built below from
every type the codec knows, shared references and cycles included) with a
few bytes flipped, inserted, deleted or overwritten with interesting values
(length fields of 0xff..., back-reference indexes), or spliced together; the
rest are raw random bytes.

Bounded run (what tests/test_fuzz_msgpack.py does: seeded, a fixed number of runs)::

    python fuzz/fuzz_msgpack.py -seed=1 -runs=2000000 -timeout=10 -rss_limit_mb=2048

Longer run (an hour; add a directory argument to keep a corpus)::

    python fuzz/fuzz_msgpack.py -max_total_time=3600 -timeout=10 -rss_limit_mb=2048
"""

import dataclasses
import datetime
import decimal
import enum
import sys
import uuid
import zoneinfo
from typing import NamedTuple

import _harness

atheris = _harness.atheris_or_exit(__doc__)

with atheris.instrument_imports():
    import turbodill.msgpack as tm


@dataclasses.dataclass
class Node:
    value: object
    children: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    a: int
    b: object = None


class Pair(NamedTuple):
    left: object
    right: object


class Color(enum.Enum):
    RED = 1
    BLUE = 2


for cls in (Node, Frozen, Pair, Color):
    tm.register(cls)


def seed_payloads():
    shared = [1, "shared", 2.5]
    cyclic = {"name": "root"}
    cyclic["self"] = cyclic
    node = Node(1)
    node.children.append(node)
    t = ()
    for _ in range(6):
        t = (t, t)
    values = [
        None,
        True,
        0,
        -1,
        2**63,
        -(2**63),
        2**64 - 1,
        2**200,
        -(2**90),
        1.5,
        float("nan"),
        "",
        "text",
        "é€😀",
        "\ud800",
        b"",
        b"\x00\xff",
        bytearray(b"ba"),
        [],
        {},
        (),
        [shared, shared, (shared,), {1: shared}],
        {(1, 2): "tuple key", frozenset({3}): {4, 5}, None: 1.0},
        cyclic,
        node,
        t,
        Frozen(1, [shared]),
        Pair(Color.RED, Color.BLUE),
        1 + 2j,
        datetime.datetime(2024, 2, 29, 1, 2, 3, 4, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"), fold=1),
        datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-5), "EST")),
        datetime.date(1, 1, 1),
        datetime.time(23, 59, tzinfo=datetime.timezone.utc),
        datetime.timedelta(days=-3, microseconds=7),
        datetime.timezone.utc,
        decimal.Decimal("-1.5E+10"),
        decimal.Decimal("NaN"),
        uuid.UUID(int=12345),
        [[[[[]]]]],
        {"k%d" % i: i * 0.5 for i in range(20)},
        list(range(300)),
        "x" * 300,
    ]
    payloads = [tm.packb(v) for v in values]
    payloads.append(tm.packb(values))
    return payloads


SEEDS = seed_payloads()
INTERESTING = [
    b"\xff",
    b"\xff\xff",
    b"\xff\xff\xff\xff",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xc1",
    b"\xd7\x01",
    b"\xc7\x00\x02",
]


def mutate(fdp):
    data = bytearray(SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)])
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        if not data:
            break
        op = fdp.ConsumeIntInRange(0, 5)
        at = fdp.ConsumeIntInRange(0, len(data) - 1)
        if op == 0:  # flip bits
            data[at] ^= fdp.ConsumeIntInRange(1, 255)
        elif op == 1:  # insert bytes
            data[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
        elif op == 2:  # delete bytes
            del data[at : at + fdp.ConsumeIntInRange(1, 8)]
        elif op == 3:  # overwrite with an interesting value
            value = INTERESTING[fdp.ConsumeIntInRange(0, len(INTERESTING) - 1)]
            data[at : at + len(value)] = value
        elif op == 4:  # splice another payload in
            other = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
            start = fdp.ConsumeIntInRange(0, len(other))
            data[at:] = other[start:]
        else:  # truncate
            del data[at:]
    return bytes(data)


def TestOneInput(raw):
    fdp = atheris.FuzzedDataProvider(raw)
    data = fdp.ConsumeBytes(len(raw)) if fdp.ConsumeIntInRange(0, 3) == 0 else mutate(fdp)
    try:
        obj = tm.unpackb(data)
    except tm.DecodeError:
        return
    tm.unpackb(tm.packb(obj))


def main():
    atheris.Setup(_harness.libfuzzer_argv(sys.argv), TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
