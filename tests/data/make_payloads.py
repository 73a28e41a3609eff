"""Write the payloads of the format contract: what this release pickles must
load, and behave the same, in every later release.

Run once per Python minor version, each interpreter with this release of
turbodill installed (by-value code objects are specific to a minor version)::

    for v in 3.11 3.12 3.13; do /path/to/venv-$v/bin/python tests/data/make_payloads.py; done

It writes ``payloads/<turbodill version>/py<major><minor>/<case>.p<protocol>.pkl``
beside this file. Each case is a small script run as ``__main__`` in a fresh
interpreter (its definitions live where users define them) that dumps
``obj`` at every protocol, or dumps its session. ``tests/test_format_contract.py``
loads each payload in a fresh interpreter and runs the case's check.

A release's payloads are never rewritten: they are the contract. A later
release adds its own directory and keeps the cases of earlier ones (their
checks may only get stricter).
"""

import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOADS = os.path.join(HERE, "payloads")
KEY = b"format contract key"
ALL_PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))


@dataclasses.dataclass(frozen=True)
class Case:
    """``source`` binds ``obj`` (for a session: the names it holds);
    ``check`` runs where it was loaded (``obj`` and ``data``, the payload's
    bytes, are defined; for a session, its names). ``prepare`` runs first, in
    the loader's working directory."""

    source: str
    check: str
    prepare: str = ""
    key: bytes | None = None
    session: bool = False
    protocols: tuple = ALL_PROTOCOLS


CONTRACT_TEXT = 'with open("contract.txt", "w") as f:\n    f.write("line one\\nline two\\n")\n'

ACCOUNT = """
class Account:
    rate = 0.5
    def __init__(self, owner, balance):
        self.owner, self.balance = owner, balance
    def interest(self):
        return self.balance * self.rate
    @property
    def label(self):
        return f"{self.owner}:{self.balance}"
    @classmethod
    def empty(cls, owner):
        return cls(owner, 0)
    @staticmethod
    def currency():
        return "EUR"
"""

SESSION_SOURCE = (
    ACCOUNT
    + """
import collections, math, threading
base = 10
def add_base(x):
    return x + base
square = lambda v: v * v
alice = Account("alice", 100)
accounts = [alice, Account("bob", 10)]
guard = threading.Lock()
counts = collections.Counter("abca")
"""
)

SESSION_CHECK = """
assert add_base(1) == 11
base = 20  # functions read the namespace they were loaded into
assert add_base(1) == 21 and add_base.__globals__ is globals()
assert square(7) == 49
assert isinstance(alice, Account) and accounts[0] is alice and alice.interest() == 50.0
assert Account("carol", 4).interest() == 2.0
assert guard.acquire(blocking=False)
assert counts["a"] == 2 and math.sqrt(9) == 3.0
"""

CASES = {
    "function": Case(
        """
        base = 10
        def add_base(x):
            "Adds base."
            return x + base
        obj = add_base
        """,
        "assert obj(5) == 15 and obj.__name__ == 'add_base' and obj.__doc__ == 'Adds base.'",
    ),
    "lambda": Case(
        "obj = lambda x, *, k=2: x * k",
        "assert obj(3) == 6 and obj(3, k=3) == 9",
    ),
    "closure": Case(
        """
        def make_counter(start):
            count = start
            def step(by=1):
                nonlocal count
                count += by
                return count
            return step
        obj = make_counter(40)
        obj()
        """,
        "assert obj() == 42 and obj(8) == 50 and obj.__closure__[0].cell_contents == 50",
    ),
    "recursive_generator": Case(
        """
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        def countdown(n):
            while n:
                yield n
                n -= 1
        obj = (fact, countdown)
        """,
        "fact, countdown = obj\nassert fact(5) == 120 and list(countdown(3)) == [3, 2, 1]",
    ),
    "class": Case(
        ACCOUNT + 'obj = [Account("ada", 100), Account]\n',
        """
        account, Account = obj
        assert type(account) is Account and account.interest() == 50.0 and account.label == "ada:100"
        assert Account.empty("x").balance == 0 and Account.currency() == "EUR" and Account.__name__ == "Account"
        """,
    ),
    "class_hierarchy": Case(
        """
        import abc
        class Shape(abc.ABC):
            @abc.abstractmethod
            def area(self): ...
            def describe(self):
                return f"{type(self).__name__} {self.area()}"
        class Square(Shape):
            __slots__ = ("side",)
            def __init__(self, side):
                self.side = side
            def area(self):
                return self.side ** 2
            def describe(self):
                return "square: " + super().describe()
        obj = Square(3)
        """,
        """
        Square = type(obj)
        Shape = Square.__mro__[1]
        assert obj.describe() == "square: Square 9" and isinstance(obj, Shape) and Square.__slots__ == ("side",)
        try:
            Shape()
        except TypeError:
            pass
        else:
            raise AssertionError("an abstract class was instantiated")
        """,
        protocols=ALL_PROTOCOLS[2:],  # protocols 0 and 1 cannot pickle __slots__ instances (as pickle)
    ),
    "enum": Case(
        """
        import enum
        class Color(enum.Enum):
            RED = 1
            GREEN = 2
            def describe(self):
                return self.name.lower()
        class Perm(enum.IntFlag):
            R = 4
            W = 2
            X = 1
        obj = [Color.GREEN, Color, Perm.R | Perm.W]
        """,
        """
        green, Color, rw = obj
        assert green is Color.GREEN and Color(1) is Color.RED and green.describe() == "green"
        assert list(Color) == [Color.RED, Color.GREEN] and rw == 6 and type(rw).W in rw and type(rw).X not in rw
        """,
    ),
    "dataclass": Case(
        """
        import dataclasses
        @dataclasses.dataclass(frozen=True)
        class Point:
            x: int
            y: int = 0
            tags: list = dataclasses.field(default_factory=list, compare=False)
            def norm1(self):
                return abs(self.x) + abs(self.y)
        obj = Point(3, -4, ["a"])
        """,
        """
        import dataclasses
        Point = type(obj)
        assert obj.norm1() == 7 and obj == Point(3, -4) and repr(obj) == "Point(x=3, y=-4, tags=['a'])"
        assert dataclasses.replace(obj, x=1).x == 1 and Point(1).tags == []
        try:
            obj.x = 0
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError("a frozen dataclass was changed")
        """,
        protocols=ALL_PROTOCOLS[2:],  # its fields are __slots__ instances (cloudpickle and dill refuse 0 and 1 too)
    ),
    "typevar": Case(
        """
        import typing
        T = typing.TypeVar("T", bound=int)
        def first(items: "list[T]") -> T:
            return items[0]
        obj = (T, first)
        """,
        "T, first = obj\nassert T.__name__ == 'T' and T.__bound__ is int and first([4, 5]) == 4",
    ),
    "locks": Case(
        """
        import threading
        held, free, rlock = threading.Lock(), threading.Lock(), threading.RLock()
        held.acquire()
        rlock.acquire()
        rlock.acquire()
        obj = {"held": held, "free": free, "rlock": rlock}
        """,
        """
        assert not obj["held"].acquire(blocking=False) and obj["free"].acquire(blocking=False)
        obj["rlock"].release()
        obj["rlock"].release()
        try:
            obj["rlock"].release()
        except RuntimeError:
            pass
        else:
            raise AssertionError("the RLock was held more than twice")
        """,
    ),
    "files": Case(
        CONTRACT_TEXT
        + textwrap.dedent(
            """
        text = open("contract.txt")
        text.readline()
        binary = open("contract.txt", "rb")
        binary.read(5)
        closed = open("contract.txt")
        closed.close()
        obj = [text, binary, closed]
        """
        ),
        """
        text, binary, closed = obj
        assert text.read() == "line two\\n" and binary.read(3) == b"one" and closed.closed
        """,
        prepare=CONTRACT_TEXT,
    ),
    "modules": Case(
        """
        import json, types
        made = types.ModuleType("made_at_runtime")
        exec("SCALE = 3\\ndef triple(x):\\n    return x * SCALE\\n", made.__dict__)
        obj = [json, made]
        """,
        """
        import json
        assert obj[0] is json and obj[1].__name__ == "made_at_runtime" and obj[1].triple(2) == 6
        """,
    ),
    "module_by_value": Case(
        """
        import sys, turbodill
        with open("contract_lib.py", "w") as f:
            f.write("SCALE = 3\\nclass Box:\\n    def __init__(self, v):\\n        self.v = v * SCALE\\n")
        sys.path.insert(0, ".")
        import contract_lib
        turbodill.register_pickle_by_value(contract_lib)
        obj = contract_lib.Box(2)
        """,
        """
        import sys
        assert "contract_lib" not in sys.modules and obj.v == 6 and type(obj)(1).v == 3
        """,
    ),
    "long_tail": Case(
        """
        import contextvars, functools, weakref
        class Node:
            pass
        keep = Node()
        keep.value = 7
        var = contextvars.ContextVar("var")
        context = contextvars.copy_context()
        context.run(var.set, 5)
        @functools.lru_cache(maxsize=8)
        def square(x):
            return x * x
        def fail():
            raise ValueError("boom")
        try:
            fail()
        except ValueError as e:
            error = e
        obj = {"keep": keep, "ref": weakref.ref(keep), "view": memoryview(b"abcdef")[1:4], "context": context,
               "var": var, "square": square, "error": error}
        """,
        """
        import traceback
        assert obj["ref"]() is obj["keep"] and obj["keep"].value == 7 and bytes(obj["view"]) == b"bcd"
        assert obj["context"].run(obj["var"].get) == 5
        assert obj["square"](4) == 16 and obj["square"].cache_info().maxsize == 8
        assert obj["error"].args == ("boom",) and "in fail" in "".join(traceback.format_tb(obj["error"].__traceback__))
        """,
    ),
    "signed": Case(
        """
        def make_scaler(k):
            return lambda x: x * k
        obj = make_scaler(7)
        """,
        """
        assert obj(6) == 42
        try:
            pickle.loads(data)
        except pickle.UnpicklingError:
            pass
        else:
            raise AssertionError("a signed payload loaded without its key")
        """,
        key=KEY,
    ),
    "session": Case(SESSION_SOURCE, SESSION_CHECK, session=True, protocols=(2, 5)),
    "session_signed": Case(SESSION_SOURCE, SESSION_CHECK, key=KEY, session=True, protocols=(2, 5)),
}


def writer(name, case):
    """The script that dumps ``case`` into its working directory: its
    source, then the dumps."""
    key = "" if case.key is None else f", key={case.key!r}"
    if case.session:
        dump = f"_turbodill.dump_session(_path, protocol=_protocol{key})"
    else:
        dump = f"open(_path, 'wb').write(_turbodill.dumps(obj, _protocol{key}))"
    return textwrap.dedent(case.source) + textwrap.dedent(
        f"""
        import turbodill as _turbodill
        for _protocol in {case.protocols!r}:
            _path = f"{name}.p{{_protocol}}.pkl"
            {dump}
        """
    )


def main():
    import turbodill

    version = f"py{sys.version_info[0]}{sys.version_info[1]}"
    directory = os.path.join(PAYLOADS, turbodill.__version__, version)
    if os.path.exists(directory):
        sys.exit(f"{directory} exists: a release's payloads are never rewritten")
    os.makedirs(directory)
    for name, case in CASES.items():
        with tempfile.TemporaryDirectory() as cwd:
            script = os.path.join(cwd, "main_script.py")
            with open(script, "w") as f:
                f.write(writer(name, case))
            subprocess.run([sys.executable, script], cwd=cwd, check=True)
            for payload in os.listdir(cwd):
                if payload.endswith(".pkl"):
                    shutil.move(os.path.join(cwd, payload), directory)
    print(f"wrote {len(os.listdir(directory))} payloads to {directory}")


if __name__ == "__main__":
    main()
