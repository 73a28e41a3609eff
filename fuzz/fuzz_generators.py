"""Fuzz the loading of suspended generators with atheris (libFuzzer).

Each input picks one of a few real generator payloads (a ``for`` loop, an
open ``with`` block, ``yield from``, a coroutine at an ``await``, an async
generator, a closure) and either

- mutates the frame state ``restore_generator`` receives: the instruction
  offset, the slots (locals and stack: truncated, extended, one set to
  another value or emptied), the length of their presence marks, the frame
  state, the exception being handled, the format; or the arguments of
  ``make_generator`` (the digest, the Python version). Loading must end in
  ``UnpicklingError`` or succeed; a load whose state is the original one
  must then resume and finish exactly as the original, any other must run
  on to a Python exception or its end; or
- changes bytes of the payload's values (the arguments of its int and str
  opcodes: offsets, states, counts, names, the digest; a str's characters, not its length; not the fields of
  code objects nor the names of globals, see ``_value_positions``) and
  loads it with plain ``pickle.loads``: any ``Exception`` is fine, and a
  generator that loads is driven on (the loader checks each saved value
  against what the code trusts it to be at its resume point, so a changed
  value is refused or runs). Opcode bytes are left alone: the C
  unpickler's own answers to broken opcodes (a memo index of a billion
  allocates gigabytes) are not the generator loader's.

A crash (a signal) or a failed check is a finding: libFuzzer stops and writes
the input to a ``crash-*`` file. ``tests/test_generators.py`` runs a bounded
fuzz; a long run::

    python fuzz/fuzz_generators.py -max_total_time=3600 -timeout=10
"""

import io
import pickle
import sys
import weakref

import _harness

atheris = _harness.atheris_or_exit(__doc__)

with atheris.instrument_imports(include=["turbodill"]):
    import turbodill
    from turbodill import _generators, _reconstruct


def _for_loop():
    def gen(items):
        total = 0
        for x in items:
            total += (yield total + x) or 1
        return total

    g = gen(list(range(6)))
    next(g)
    g.send(2)
    return g


def _with_block():
    class Box:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def gen():
        with Box():
            yield 1
            yield 2
        yield 3

    g = gen()
    next(g)
    return g


def _yield_from():
    def leaf():
        yield "a"
        yield "b"
        return "leaf"

    def mid():
        r = yield from leaf()
        yield r

    def top():
        yield from mid()

    g = top()
    next(g)
    return g


def _coroutine():
    class Tick:
        def __await__(self):
            return (yield "tick")

    async def inner():
        return (await Tick()) or 1

    async def outer():
        return await inner() + await inner()

    c = outer()
    c.send(None)
    return c


def _async_generator():
    async def agen():
        for i in range(3):
            yield i

    a = agen()
    try:
        a.asend(None).send(None)
    except StopIteration:
        pass
    return a


def _closure():
    def make():
        k = 3

        def gen():
            nonlocal k
            while k:
                k -= 1
                yield k

        return gen()

    g = make()
    next(g)
    return g


def _drive(obj):
    """Everything the object still does, as a list of outcomes (a Python
    exception ends it; the unforged payloads raise none)."""
    out = []
    for _ in range(20):
        try:
            if hasattr(obj, "asend"):
                obj.asend(None).send(None)
            else:
                out.append(obj.send(None))
        except StopIteration as stop:
            out.append(("stop", stop.value))
            if not hasattr(obj, "asend"):
                break
        except StopAsyncIteration:
            out.append("async stop")
            break
        except Exception as e:
            out.append(("raised", type(e).__name__))
            break
    return out


PAYLOADS = [
    turbodill.dumps(make()) for make in (_for_loop, _with_block, _yield_from, _coroutine, _async_generator, _closure)
]
_VALUE_OPCODES = {"BININT1", "BININT2", "BININT", "SHORT_BINUNICODE", "BINUNICODE"}
_LENGTH_PREFIX = {"SHORT_BINUNICODE": 1, "BINUNICODE": 4}


_MARK_CONSUMERS = {"TUPLE", "APPENDS", "SETITEMS", "ADDITEMS", "FROZENSET", "LIST", "DICT", "OBJ", "INST", "POP_MARK"}


def _value_positions(payload):
    """Positions of the bytes that are opcode arguments holding values,
    outside the fields of code objects: a code object whose stack size or
    flags are changed crashes the interpreter when it runs, whatever
    carries it (functions by value in any pickler), so that is no finding
    about generator frames."""
    import pickletools

    ops = list(pickletools.genops(payload))
    positions, marks, code_memo = [], [], set()
    memo_count, last_str, code_on_top = 0, None, False
    # The module and name strings of STACK_GLOBAL stay: changing them imports
    # whatever module they then name, which is the unpickler's business.
    global_names = set()
    for i, (op, _, _) in enumerate(ops):
        if op.name == "STACK_GLOBAL":
            strings = [j for j in range(i - 1, max(i - 5, -1), -1) if ops[j][0].name != "MEMOIZE"][:2]
            global_names.update(ops[j][2] for j in strings)
    for (op, arg, pos), (_, _, end) in zip(ops, ops[1:]):
        if op.name == "MARK":
            marks.append(code_on_top)  # True: the MARK of types.CodeType's arguments
        elif op.name in _MARK_CONSUMERS and marks:
            marks.pop()
        if op.name in _VALUE_OPCODES and not any(marks) and pos not in global_names:
            # A str's length prefix stays: a changed one shifts every later
            # opcode, and the C unpickler's answers to the garbage that makes
            # (a memo index of a billion) are not the generator loader's.
            positions.extend(range(pos + 1 + _LENGTH_PREFIX.get(op.name, 0), end))
        if op.name == "MEMOIZE":
            if code_on_top:
                code_memo.add(memo_count)
            memo_count += 1
        else:
            code_on_top = (op.name == "STACK_GLOBAL" and last_str == "CodeType") or (
                op.name in ("BINGET", "LONG_BINGET") and arg in code_memo
            )
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            last_str = arg
    return positions


VALUE_POSITIONS = [_value_positions(p) for p in PAYLOADS]
EXPECTED = [_drive(pickle.loads(p)) for p in PAYLOADS]


# What a slot or the handled exception may be set to: of each kind the
# loader checks for, and not.
_VALUES = [
    None,
    0,
    3,
    -1,
    "s",
    (),
    ("a",),
    [],
    [None],
    {},
    set(),
    ValueError("v"),
    ValueError,
    iter([1]),
    object(),
    len,
]


class _Mutating(pickle.Unpickler):
    def __init__(self, data, fdp):
        super().__init__(io.BytesIO(data))
        self.fdp = fdp
        self.unchanged = True

    def find_class(self, module, name):
        # The C unpickler's memo is not traversed by the garbage collector:
        # a memoized callable holding the unpickler strongly would keep it,
        # and everything it loaded, alive forever (megabytes a second here).
        found = super().find_class(module, name)
        loader = weakref.ref(self)
        if found is _reconstruct.restore_generator:
            return lambda gen, state: found(gen, loader().mutate_state(state))
        if found is _reconstruct.make_generator:
            return lambda *args: found(*loader().mutate_args(args))
        return found

    def mutate_state(self, state):
        fdp = self.fdp
        state = list(state)
        choice = fdp.ConsumeIntInRange(0, 8)
        if choice == 1:
            state[2] = fdp.ConsumeIntInRange(-2, 200)
        elif choice == 2:
            cut = fdp.ConsumeIntInRange(0, len(state[3]))
            state[3], state[4] = state[3][:cut], state[4][:cut]
        elif choice == 3:
            extra = fdp.ConsumeIntInRange(0, 4)
            state[3] = state[3] + [fdp.ConsumeInt(1)] * extra
            state[4] = state[4] + bytes([1]) * extra
        elif choice == 4:
            state[4] = state[4][: fdp.ConsumeIntInRange(0, len(state[4]))] + bytes([1]) * fdp.ConsumeIntInRange(0, 2)
        elif choice == 5:
            state[1] = fdp.ConsumeIntInRange(-4, 5)
        elif choice == 6:
            state[0] = fdp.ConsumeIntInRange(0, 3)
        elif choice == 7 and state[3]:
            i = fdp.ConsumeIntInRange(0, len(state[3]) - 1)
            value = _VALUES[fdp.ConsumeIntInRange(0, len(_VALUES) - 1)]
            state[3] = state[3][:i] + [value] + state[3][i + 1 :]
            state[4] = state[4][:i] + bytes([fdp.ConsumeBool()]) + state[4][i + 1 :]
        elif choice == 8:
            state[5] = _VALUES[fdp.ConsumeIntInRange(0, len(_VALUES) - 1)]
        state = tuple(state)
        self.unchanged = self.unchanged and choice == 0
        return state

    def mutate_args(self, args):
        choice = self.fdp.ConsumeIntInRange(0, 2)
        func, digest, version = args
        if choice == 1:
            digest = self.fdp.ConsumeUnicode(32)
        elif choice == 2:
            version = (3, self.fdp.ConsumeIntInRange(0, 20))
        self.unchanged = self.unchanged and (digest, tuple(version)) == (args[1], tuple(args[2]))
        return func, digest, version


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, len(PAYLOADS) - 1)
    payload = PAYLOADS[which]
    if fdp.ConsumeBool():
        loader = _Mutating(payload, fdp)
        try:
            obj = loader.load()
        except pickle.UnpicklingError:
            return
        got = _drive(obj)
        if loader.unchanged and got != EXPECTED[which]:
            raise AssertionError(f"resumed differently: {got} != {EXPECTED[which]}")
        return
    flipped = bytearray(payload)
    positions = VALUE_POSITIONS[which]
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        flipped[positions[fdp.ConsumeIntInRange(0, len(positions) - 1)]] = fdp.ConsumeInt(1) & 0xFF
    try:
        obj = pickle.loads(bytes(flipped))
    except Exception:
        return
    if hasattr(obj, "send") or hasattr(obj, "asend"):
        _drive(obj)


if __name__ == "__main__":
    assert _generators  # instrumented with turbodill
    atheris.Setup(_harness.libfuzzer_argv(sys.argv), TestOneInput)
    atheris.Fuzz()
