"""Writes the payloads of tests/test_compat.py: each case pickled by dill or
cloudpickle (whichever is importable as LIB), as a stdlib pickle of
{case name: payload bytes}. The definitions live in this script's
``__main__``, where users define them.

    python make_payloads.py dill|cloudpickle OUTFILE

The committed files were written with dill 0.3.6 and cloudpickle 2.2.1,
each Python minor version in a venv of its own:

    python3.X -m venv /tmp/old && /tmp/old/bin/pip install dill==0.3.6 cloudpickle==2.2.1
    /tmp/old/bin/python make_payloads.py dill dill-0.3.6-py3X.pkl
    /tmp/old/bin/python make_payloads.py cloudpickle cloudpickle-2.2.1-py3X.pkl
"""

import abc
import collections
import dataclasses
import enum
import pickle
import sys
import threading
import types

K = 7


def helper(x):
    return x * K


def make_closure(n):
    def add(x):
        return x + n + helper(1)

    return add


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm(self):
        return abs(self.x) + abs(self.y)


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass
class Pair:
    a: int
    b: list = dataclasses.field(default_factory=list)


class Base(abc.ABC):
    @abc.abstractmethod
    def f(self): ...


class Impl(Base):
    def f(self):
        return 3


NT = collections.namedtuple("NT", "a b")


def cases():
    module = types.ModuleType("dynmod")
    exec("X = 5\ndef g():\n    return X + 1", module.__dict__)
    locked = threading.Lock()
    locked.acquire()
    return {
        "function": helper,
        "closure": make_closure(3),
        "lambda": lambda x: x**2 + K,
        "recursive": fact,
        "class": Point,
        "instance": Point(1, -2),
        "enum": Color,
        "member": Color.GREEN,
        "dataclass": Pair(1, [2]),
        "abc": Impl(),
        "namedtuple": NT(1, 2),
        "module": module,
        "lock": locked,
    }


if __name__ == "__main__":
    lib, out = sys.argv[1], sys.argv[2]
    library = __import__(lib)
    payloads = {}
    for name, obj in cases().items():
        for variant, kwds in [("", {}), ("-recurse", {"recurse": True})] if lib == "dill" else [("", {})]:
            try:
                payloads[name + variant] = library.dumps(obj, **kwds)
            except Exception:
                pass  # what the library itself cannot pickle
    with open(out, "wb") as f:
        pickle.dump(payloads, f, protocol=4)
