"""Forged suspended-generator payloads never crash the interpreter.

CPython's eval loop trusts what its own bytecode pushed: FOR_ITER calls the
iterator's ``tp_iternext`` unchecked, LIST_APPEND casts its target to a list,
the exception handlers read the traceback field of what they take for an
exception, 3.12+ reads locals it proved set without a check. A payload is
taken from a real suspended generator of each shape, the state the loader
receives has one slot swapped (``Forging``, a hook over ``_reconstruct``'s
``restore_generator``), and a fresh interpreter loads it: it must refuse
with ``UnpicklingError`` naming what the slot needed, or load a generator
that runs to a Python exception; never die by a signal. The unforged
payload of each shape loads and resumes as the original does.
"""

import os
import pickle
import subprocess
import sys
import textwrap
import types

import pytest

import turbodill
from test_generators import check_same
from turbodill import _generators

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

# The child's helpers: a forging loader, and a driver of what it loads.
HARNESS = '''
import io, pickle, sys, types, turbodill

EMPTY = object()  # a slot left empty (NULL)


class Forging(pickle.Unpickler):
    """Loads a payload with `restore_generator` seeing `forge(gen, state)`."""

    def __init__(self, data, forge):
        super().__init__(io.BytesIO(data))
        self.forge = forge

    def find_class(self, module, name):
        found = super().find_class(module, name)
        if name == "restore_generator":
            return lambda gen, state: found(gen, self.forge(gen, state))
        return found


def code_of(gen):
    return getattr(gen, "gi_code", None) or getattr(gen, "cr_code", None) or gen.ag_code


def put(state, index, value):
    slots, present = list(state[3]), bytearray(state[4])
    slots[index] = None if value is EMPTY else value
    present[index] = value is not EMPTY
    return state[:3] + (slots, bytes(present)) + state[5:]


def stack_slot(gen, state, holds, value):
    """`state` with the topmost stack slot whose value satisfies `holds`
    (EMPTY: an empty slot) set to `value`."""
    code = code_of(gen)
    n = len(code.co_varnames) + len(set(code.co_cellvars) - set(code.co_varnames)) + len(code.co_freevars)
    for i in reversed(range(n, len(state[3]))):
        empty = not state[4][i]
        if (holds is EMPTY and empty) or (holds is not EMPTY and not empty and holds(state[3][i])):
            return put(state, i, value)
    raise AssertionError(f"no such stack slot in {state[3][n:]} {state[4][n:]}")


def local(gen, state, name, value):
    return put(state, code_of(gen).co_varnames.index(name), value)


def only(gen, state, name, forge):
    """`forge` applied to the generator whose code is `name` (others pass)."""
    return forge(gen, state) if code_of(gen).co_name == name else state
'''

DRIVE = '''
import inspect, types


def drive(g, steps=20):
    """Run a loaded generator, coroutine or async generator on, sending
    10, 11, ... (None to start it), printing what it does."""
    if isinstance(g, types.AsyncGeneratorType):
        step = lambda value: g.asend(value).send(None)
    else:
        step = g.send
    started = not (
        isinstance(g, types.GeneratorType) and inspect.getgeneratorstate(g) == inspect.GEN_CREATED
        or isinstance(g, types.CoroutineType) and inspect.getcoroutinestate(g) == inspect.CORO_CREATED
    )
    for i in range(steps):
        try:
            print("step", step(10 + i if started else None))
            started = True
        except StopIteration as stop:
            print("stop", stop.value)
            return
        except StopAsyncIteration:
            print("stop async")
            return
        except Exception as e:
            print("raised", type(e).__name__, e)
            return
'''
HARNESS += DRIVE

FORGE = """
{harness}
{definitions}
data = turbodill.dumps(obj)
print("--- load")
try:
    g = Forging(data, lambda gen, state: ({forge})).load()
except pickle.UnpicklingError as e:
    print("refused:", e)
    sys.exit(0)
print("loaded")
drive(g)
"""


def forged_load(definitions, forge):
    """Load the payload of `obj` with its state forged by `forge` (an
    expression of `gen` and `state`) in a fresh interpreter; what it printed
    from the load on."""
    code = FORGE.format(harness=HARNESS, definitions=textwrap.dedent(definitions), forge=forge)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"died with {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.split("--- load\n")[1]


# ---- the shapes: a real suspended generator each ---------------------------

TICK = """
class Tick:
    '''An awaitable that suspends its awaiter once and gives back what it is sent.'''
    def __await__(self):
        return (yield "tick")
"""

SHAPES = {
    "for loop": """
        def gen(xs):
            total = 0
            for x in xs:
                yield x
                total += x
            return total
        obj = gen([1, 2, 3])
        next(obj)
        """,
    "yield in a finally, on the way out of an exception": """
        def gen():
            try:
                raise ValueError("boom")
            finally:
                yield "cleanup"
        obj = gen()
        next(obj)
        """,
    "except body": """
        def gen():
            try:
                raise KeyError("k")
            except KeyError as e:
                yield repr(e)
            yield "after"
        obj = gen()
        next(obj)
        """,
    "with block": """
        class CM:
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                print("exit", exc[0])
        def gen():
            with CM():
                yield 1
                yield 2
        obj = gen()
        next(obj)
        """,
    "list display being built": """
        def gen(a):
            return [*a, (yield)]
        obj = gen((1, 2))
        next(obj)
        """,
    "call with arguments pending": """
        def gen(f, a):
            return f(a, (yield))
        obj = gen(max, 5)
        next(obj)
        """,
    "method call with arguments pending": """
        def gen(xs):
            return xs.index((yield))
        obj = gen([4, 11, 10])
        next(obj)
        """,
    "await in a list comprehension": TICK
    + textwrap.dedent(
        """
        async def work(xs):
            return [await Tick() + x for x in xs]
        obj = work([1, 2, 3])
        obj.send(None)
        """
    ),
    "await in a dict comprehension": TICK
    + textwrap.dedent(
        """
        async def work(xs):
            return {x: await Tick() for x in xs}
        obj = work([1, 2, 3])
        obj.send(None)
        """
    ),
    "async for": TICK
    + textwrap.dedent(
        """
        class Count:
            def __init__(self, n):
                self.n = n
            def __aiter__(self):
                return self
            def __anext__(self):
                if self.n == 0:
                    raise StopAsyncIteration
                self.n -= 1
                return Tick()
        async def work():
            seen = []
            async for v in Count(3):
                seen.append(v)
            return seen
        obj = work()
        obj.send(None)
        """
    ),
    "async with, leaving by an exception": TICK
    + textwrap.dedent(
        """
        class ACM:
            async def __aenter__(self):
                return self
            async def __aexit__(self, *exc):
                print("aexit", exc[0].__name__)
                await Tick()
                return True
        async def work():
            async with ACM():
                raise ValueError("swallowed")
            return "done"
        obj = work()
        obj.send(None)
        """
    ),
    "except* body": """
        def gen():
            try:
                raise ExceptionGroup("g", [ValueError(1), KeyError(2)])
            except* ValueError:
                yield "handling"
            except* KeyError:
                yield "other"
        obj = gen()
        next(obj)
        """,
    "f-string being built": """
        def gen(a):
            return f"{a}:{(yield)}"
        obj = gen("x")
        next(obj)
        """,
    "generator expression": """
        obj = (x * 2 for x in [1, 2, 3])
        next(obj)
        """,
    "generator expression, not started": """
        obj = (x * 2 for x in [1, 2, 3])
        """,
    "not started": """
        def gen(n):
            yield n
            yield n + 1
        obj = gen(3)
        """,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_unforged_payload_resumes_in_a_fresh_interpreter(tmp_path, shape):
    assert check_same(tmp_path, textwrap.dedent(SHAPES[shape]), DRIVE + "drive(obj)").strip()


def swaps(shape, holds, values, outcome, within=None):
    """Cases of `shape`: the topmost stack slot whose value satisfies
    `holds` (source of a predicate, or EMPTY) set to each of `values`
    (sources), in the generator whose code is named `within` (default: the
    one dumped); `outcome` is what loading it says or does."""
    cases = []
    for value in values:
        forge = f"stack_slot(gen, state, {holds}, {value})"
        if within:
            forge = f"only(gen, state, {within!r}, lambda gen, state: {forge})"
        cases.append((shape, forge, outcome))
    return cases


def emptied(shape, name, outcome, within=None, value="EMPTY"):
    """The case of `shape` whose local `name` is empty (or set to `value`)."""
    forge = f"local(gen, state, {name!r}, {value})"
    if within:
        forge = f"only(gen, state, {within!r}, lambda gen, state: {forge})"
    return [(shape, forge, outcome)]


ITERATOR = "lambda v: type(v).__name__.endswith('iterator')"
EXCEPTION = "lambda v: isinstance(v, ValueError)"
NONE = "lambda v: v is None"
LIST = "lambda v: type(v) is list"
LASTI = "lambda v: type(v) is int"
COUNT = "lambda v: type(v).__name__ == 'Count'"
FINALLY = "yield in a finally, on the way out of an exception"
ASYNC_WITH = "async with, leaving by an exception"
# Where a comprehension runs: its own coroutine before 3.12, inlined after.
LISTCOMP, DICTCOMP = ("work", "work") if PY312 else ("<listcomp>", "<dictcomp>")

# (shape, forge (an expression of gen and state), what the refusal says)
REFUSED = [
    *swaps("for loop", ITERATOR, ["5", "[1, 2]"], "needs an iterator"),
    *swaps("for loop", ITERATOR, ["EMPTY"], "needs a value"),
    *swaps(FINALLY, EXCEPTION, ["5", "ValueError"], "needs an exception instance"),
    *swaps(FINALLY, NONE, ["'not an exception'"], "needs None or an exception instance"),
    *swaps("except body", NONE, ["7"], "needs None or an exception instance"),
    ("except body", "state[:5] + (5,) + state[6:]", "the exception it handles"),
    ("except body", "state[:5] + (KeyError,) + state[6:]", "the exception it handles"),
    *swaps("with block", "callable", ["EMPTY"], "needs a value"),
    *swaps("list display being built", LIST, ["(1, 2)"], "needs a list"),
    *swaps("list display being built", LIST, ["EMPTY"], "needs a value"),
    *swaps("call with arguments pending", "lambda v: v is max", ["EMPTY"], "needs a value"),
    *swaps("call with arguments pending", "lambda v: v == 5", ["EMPTY"], "needs a value"),
    # The slot that is never NULL: the bound object below the method's
    # NULL-or-function slot before 3.13, the function above it from 3.13.
    *swaps("method call with arguments pending", "callable" if PY313 else LIST, ["EMPTY"], "needs a value"),
    *swaps("await in a list comprehension", LIST, ["{}"], "needs a list", within=LISTCOMP),
    *swaps("await in a list comprehension", ITERATOR, ["5"], "needs an iterator", within=LISTCOMP),
    *swaps("await in a dict comprehension", "lambda v: type(v) is dict", ["[]"], "needs a dict", within=DICTCOMP),
    *swaps("async for", COUNT, ["EMPTY"], "needs a value", within="work"),
    *swaps(ASYNC_WITH, LASTI, ["10**6", "-1", "'4'"], "needs an int offset inside the code", within="work"),
    *swaps(ASYNC_WITH, EXCEPTION, ["'x'"], "needs an exception instance", within="work"),
    *swaps("except* body", LIST, ["[5]"], "needs a list of exceptions or None"),
    *swaps("except* body", LIST, ["()"], "needs a list"),
    *swaps(
        "except* body",
        "lambda v: isinstance(v, BaseExceptionGroup)",
        ["ExceptionGroup"],
        "exception instance, not type",
    ),
    *swaps("f-string being built", "lambda v: v == 'x'", ["5"], "needs a str"),
]
REFUSED += [
    # A generator expression's iterator is its argument `.0`, which FOR_ITER trusts.
    *emptied("generator expression, not started", ".0", "local .0 needs an iterator", value="[5]"),
    *emptied("generator expression", ".0", "local .0 needs an iterator", value="iter"),
]
if PY312:  # locals the code reads unchecked
    REFUSED += [
        *emptied("generator expression, not started", ".0", "local .0 needs a value"),
        *emptied("for loop", "total", "local total needs a value"),
        *emptied("for loop", "x", "local x needs a value"),
        *emptied("not started", "n", "local n needs a value"),
        *emptied("await in a list comprehension", "x", "local x needs a value", within="work"),
    ]


@pytest.mark.parametrize("shape, forge, refusal", REFUSED, ids=[f"{s}: {r}" for s, _, r in REFUSED])
def test_forged_slot_is_refused(shape, forge, refusal):
    last = forged_load(SHAPES[shape], forge).splitlines()[-1]
    assert last.startswith("refused: generator ") and refusal in last, last


# (shape, forge, what the loaded generator does): values the code checks
# itself load, and resuming gives a Python exception.
LOADED = [
    *swaps("with block", "callable", ["5"], "raised TypeError 'int' object is not callable"),
    # The NULL of a plain call filled: before 3.13 it is the callable's slot
    # (7 is called), from 3.13 the self slot (max(7, 5, 10)).
    *swaps(
        "call with arguments pending",
        "EMPTY",
        ["7"],
        "stop 10" if PY313 else "raised TypeError 'int' object is not callable",
    ),
    *swaps(
        "async for",
        COUNT,
        ["5"],
        "raised TypeError 'async for' requires an iterator with __anext__ method, got int",
        within="work",
    ),
    *swaps(FINALLY, NONE, ["KeyError('previous')"], "raised ValueError boom"),
    *swaps("for loop", ITERATOR, ["iter([7, 8])"], "step 7"),
]
if not PY312:  # 3.11 checks every local it reads
    LOADED += [
        *emptied("for loop", "total", "raised UnboundLocalError"),
        *emptied("not started", "n", "raised UnboundLocalError"),
    ]


@pytest.mark.parametrize("shape, forge, outcome", LOADED, ids=[f"{s}: {o}" for s, _, o in LOADED])
def test_checked_values_load_and_fail_in_python(shape, forge, outcome):
    out = forged_load(SHAPES[shape], forge)
    assert out.startswith("loaded\n"), out
    assert outcome in out, out


def test_direct_restore_checks_the_values():
    """`_gen_restore` is Python-visible: it runs the same checks itself."""
    code = HARNESS + textwrap.dedent(
        """
        from turbodill._native import _gen_restore
        from turbodill import _generators

        def gen(xs):
            for x in xs:
                yield x

        real = gen([1, 2])
        next(real)
        # The frame's fields as the saver writes them.
        state = []
        Forging(turbodill.dumps(real), lambda g, s: state.append(s) or s).load()
        _, frame_state, lasti, slots, present, exc, _, _ = state[0]
        for value in (5, None):
            fresh = gen([])
            try:
                _gen_restore(fresh, frame_state, lasti, slots[:-1] + [value], present, exc)
            except pickle.UnpicklingError as e:
                print("refused:", e)
            else:
                print("restored")
        fresh = gen([])
        _gen_restore(fresh, frame_state, lasti, slots[:-1] + [None], present[:-1] + b"\\0", exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "UnpicklingError" in proc.stderr, proc.stderr
    assert proc.stdout.splitlines() == [
        "refused: generator gen: stack slot 0 needs an iterator, not int",
        "refused: generator gen: stack slot 0 needs an iterator, not NoneType",
    ]
    assert "stack slot 0 needs a value, not nothing" in proc.stderr


BITS = """
from turbodill._native import _gen_restore
import turbodill._generators as model

def gen(xs):
    for x in xs:
        yield x

# Replaced before _gen_restore first runs: it keeps the function it found then.
required = {}
modelled = model.resume_requirements
model.resume_requirements = lambda code, lasti: ((required["bits"],), ()) if required else modelled(code, lasti)
real = gen([1, 2])
next(real)
saved = []
Forging(turbodill.dumps(real), lambda g, s: saved.append(s) or s).load()
_, frame_state, lasti, slots, present, exc, _, _ = saved[0]
for name, bad, good in [
    ("ITERATOR", 5, iter([])),
    ("LIST", (), []),
    ("DICT", [], {}),
    ("SET", frozenset(), set()),
    ("TUPLE", [], ()),
    ("STR", b"", "s"),
    ("EXCEPTION", ValueError, ValueError()),
    ("EXCEPTION_OR_NONE", 1, None),
    ("LASTI", len(real.gi_code.co_code) // 2, 0),
    ("KWNAMES", ("a", 1), ("a",)),
    ("EXCEPTION_LIST", [1], [None, KeyError()]),
    ("FUNCTION", len, lambda: 0),
    ("MAY_BE_EMPTY", 5, EMPTY),
]:
    required["bits"] = getattr(model, name)
    for value in (bad, good):
        marks = present[:-1] + (b"\\0" if value is EMPTY else b"\\1")
        try:
            _gen_restore(gen([]), frame_state, lasti, slots[:-1] + [value], marks, exc)
            print(name, "restored")
        except pickle.UnpicklingError as e:
            print(name, "refused:", str(e).split("needs ")[1])
"""


def test_each_requirement_bit_means_the_same_in_python_and_rust():
    """The requirement bits are defined twice (the model in Python, the
    checks in Rust): with the model made to ask for one bit, `_gen_restore`
    refuses a value lacking it, in the words of that requirement, and takes
    one that has it (and a bit that allows nothing: any value, not NULL)."""
    proc = subprocess.run([sys.executable, "-c", HARNESS + BITS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    needs = [
        "an iterator, not int",
        "a list, not tuple",
        "a dict, not list",
        "a set, not frozenset",
        "a tuple, not list",
        "a str, not bytes",
        "an exception instance, not type",
        "None or an exception instance, not int",
        "an int offset inside the code, not int",
        "a tuple of strs, not tuple",
        "a list of exceptions or None, not list",
        "a function, not builtin_function_or_method",
    ]
    names = [line.split()[0] for line in proc.stdout.splitlines()[::2]]
    assert proc.stdout.splitlines() == [
        *(line for name, need in zip(names, needs) for line in (f"{name} refused: {need}", f"{name} restored")),
        "MAY_BE_EMPTY restored",
        "MAY_BE_EMPTY restored",
    ]


# ---- real generators: the model never refuses one ------------------------


def _stdlib_generators():
    """Generators of the stdlib, of many shapes (nested loops, try/finally,
    with, yield from, LOAD_FAST_CHECK before unchecked reads, closures)."""
    import difflib
    import heapq
    import io
    import json
    import pathlib
    import tokenize
    import xml.etree.ElementTree as ET

    here = os.path.dirname(__file__)
    lines = open(__file__).read().splitlines()
    yield difflib.unified_diff(lines[:80], lines[5:90])
    yield difflib.ndiff(lines[:30], lines[2:33])
    yield tokenize.generate_tokens(io.StringIO("\n".join(lines[:60])).readline)
    yield json.JSONEncoder(indent=1).iterencode({"a": [1, {"b": [2, None]}], "c": "d"})
    yield heapq.merge([1, 4], [2, 5], [3, 6], key=lambda x: -x, reverse=True)
    yield os.walk(here)
    yield os.fwalk(here)
    yield ET.iterparse(io.BytesIO(b"<a><b x='1'>t</b><c/></a>"), events=("start", "end"))
    yield (len(line) for line in lines)
    if hasattr(pathlib.Path, "walk"):
        yield pathlib.Path(here).walk()


def test_real_generators_load_at_every_step():
    """Stepped through, each stdlib generator's payload loads at every
    step (or does not pickle at all, for what it holds: open fds): no
    check refuses a frame the interpreter made."""
    loaded = 0
    for gen in _stdlib_generators():
        for _ in range(40):
            try:
                data = turbodill.dumps(gen)
            except turbodill.PicklingError:
                data = None
            if data is not None:
                pickle.loads(data)
                loaded += 1
            if next(gen, StopIteration) is StopIteration:
                break
    assert loaded > 100


def test_model_needs_only_arguments_at_entry():
    """The locals the model needs before any instruction ran are
    arguments, in every code object of a sample of the stdlib: the
    liveness of unchecked reads agrees with the compiler's own proof (which
    only omits the check for locals set on every path); and every code is
    modelled."""
    import glob

    files = sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))[::2]
    checked = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            work = [compile(f.read(), path, "exec")]
        while work:
            code = work.pop()
            work.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            model = _generators.resume_model(code)
            assert isinstance(model, dict), (path, code.co_qualname, model)
            nargs = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 4) + bool(code.co_flags & 8)
            needed = [i for i, bits in model[None][1] if not bits & _generators.MAY_BE_EMPTY]
            assert all(i < nargs for i in needed), (path, code.co_qualname, model[None])
            checked += 1
    assert checked > 3000


# ---- random forgeries: any slot, any value ---------------------------------

FUZZ = '''
import gc, random, sys
{harness}
{shapes}

def values():
    """Replacement values: of each kind a slot can need, and not."""
    def f():
        pass
    return [EMPTY, None, 0, 1, -1, 3, 2**70, "s", b"b", 1.5, (), (1,), [], [ValueError()], [5], {{}}, {{1}},
            frozenset(), ValueError("v"), ValueError, KeyError(), StopIteration(1), ExceptionGroup("g", [KeyError()]),
            iter([]), iter([1, 2]), iter(range(3)), (x for x in "ab"), object(), f, print, max, types.CellType(1),
            ("a", "b"), 2**31, 10**6, True]

seed, tries = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(seed)
payloads = [(name, turbodill.dumps(obj)) for name, obj in SHAPES]
pool = values()
count = refused = 0
while count < tries:
    name, data = rnd.choice(payloads)
    picks = [(rnd.random(), rnd.randrange(len(pool))) for _ in range(rnd.choice([1, 1, 2, 3]))]

    def forge(gen, state):
        for where, which in picks:
            value = pool[which]
            if where < 0.1 or not state[3]:  # the exception being handled
                state = state[:5] + (None if value is EMPTY else value,) + state[6:]
            else:
                state = put(state, int(where * len(state[3])) % len(state[3]), value)
        return state

    print(count, name, picks, flush=True)  # the last line before a crash names it
    count += 1
    try:
        g = Forging(data, forge).load()
    except (pickle.UnpicklingError, TypeError):
        refused += 1
        continue
    action = rnd.choice(["drive", "throw", "close", "drop"])
    try:
        if action == "drive":
            drive(g, 5)
        elif action == "throw":
            (g.athrow if isinstance(g, types.AsyncGeneratorType) else g.throw)(KeyError("thrown"))
        elif action == "close":
            g.close() if not isinstance(g, types.AsyncGeneratorType) else g.aclose().send(None)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
    del g
    gc.collect()
print("done", count, "refused", refused)
'''

FUZZ_SHAPES = """
SHAPES = []
def shape(name, obj):
    SHAPES.append((name, obj))
for _name, _source in {sources!r}.items():
    _ns = dict(globals())
    exec(_source, _ns)
    shape(_name, _ns["obj"])

def nested():
    def leaf():
        yield "a"
        yield "b"
    yield from leaf()
g = nested(); next(g); shape("yield from", g)

def closure(k):
    def gen():
        nonlocal k
        while True:
            k += yield k
    return gen()
g = closure(1); next(g); shape("closure", g)

def matcher(items):
    for item in items:
        match item:
            case [a, *rest]:
                yield a, (yield rest)
            case {{"k": v}}:
                yield v
g = matcher([[1, 2, 3], {{"k": 4}}]); next(g); shape("match", g)

async def agen(n):
    for i in range(n):
        try:
            yield i
        finally:
            pass
g = agen(3)
try:
    g.asend(None).send(None)
except StopIteration:
    pass
shape("async generator", g)

def genexp_holder(xs):
    return (x * 2 for x in xs)
g = genexp_holder([1, 2, 3]); next(g); shape("generator expression", g)
"""


def fuzz_script():
    """The random forgery loop as a script: ``python SCRIPT SEED TRIES``
    (a longer run by hand: write it out and give it more tries)."""
    sources = {name: textwrap.dedent(source) for name, source in SHAPES.items()}
    return FUZZ.format(harness=HARNESS, shapes=textwrap.dedent(FUZZ_SHAPES.format(sources=sources)))


def test_random_forgeries_never_crash(tmp_path):
    """A seeded loop of 5,000 tries (10-15 s) swapping random slots, the exception being
    handled, or several at once, for random values or NULL, in many shapes:
    each load is refused (UnpicklingError, or TypeError for a value the
    unpickler's own calls reject) or gives a generator that runs, throws
    and closes with Python exceptions only."""
    script = tmp_path / "fuzz_forgeries.py"
    script.write_text(fuzz_script())
    proc = subprocess.run(
        [sys.executable, str(script), "1", "5000"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    tail = "\n".join(proc.stdout.splitlines()[-3:])
    assert proc.returncode == 0, f"died with {proc.returncode} after:\n{tail}\n{proc.stderr[-2000:]}"
    done = proc.stdout.splitlines()[-1].split()
    assert done[0] == "done" and int(done[1]) == 5_000 and 0 < int(done[3]) < int(done[1]), tail


UNGUARDED = """
import turbodill._generators as _generators

_modelled = _generators.resume_requirements


def _anything_goes(code, lasti):
    required = _modelled(code, lasti)
    return ((1,) * len(required[0]), ()) if isinstance(required, tuple) else required


_generators.resume_requirements = _anything_goes
"""


def test_random_forgeries_crash_without_the_value_checks(tmp_path):
    """The loop above is not idle: with the value checks off (every slot
    may hold anything or nothing, no local is needed; the shape checks
    stay), the interpreter dies by a signal within a few hundred tries."""
    script = tmp_path / "fuzz_unguarded.py"
    script.write_text(fuzz_script().replace("seed, tries =", UNGUARDED + "\nseed, tries =", 1))
    proc = subprocess.run(
        [sys.executable, str(script), "1", "1000"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode < 0, proc.stdout[-2000:]
    assert int(proc.stdout.splitlines()[-1].split()[0]) < 1000


def test_harness_shapes_are_all_suspended():
    """Each shape the tests forge is paused at a yield or an await (one not
    started), so that its payload holds a frame to forge; each is then run
    to its end here, leaving nothing for the garbage collector to close."""
    for name, source in SHAPES.items():
        ns = {}
        exec(HARNESS + textwrap.dedent(source), ns)
        obj = ns["obj"]
        paused = getattr(obj, "gi_suspended", None) or getattr(obj, "cr_suspended", None)
        assert paused or ("not started" in name and ns["inspect"].getgeneratorstate(obj) == "GEN_CREATED"), name
        ns["drive"](obj)
        assert (getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)) is None, name
