"""Never a crash: every object an interpreter holds, and every wrong argument
to the native module, gives bytes or a typed exception.

The work happens in a child process (`_no_crash_child.py`), so a crash
(SIGSEGV, an abort) fails the test instead of killing pytest. The child
traces each object to stderr before pickling it: the tail of its stderr
names the culprit.
"""

import os
import signal
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_no_crash_child.py")


def run_child(mode):
    env = dict(os.environ, TURBODILL_NO_CRASH_TRACE="1")
    proc = subprocess.run([sys.executable, CHILD, mode], capture_output=True, text=True, env=env, timeout=120)
    tail = "\n".join(proc.stderr.splitlines()[-5:])
    if proc.returncode < 0:
        pytest.fail(f"child killed by {signal.Signals(-proc.returncode).name}; last traced:\n{tail}")
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{tail}"
    lines = proc.stdout.splitlines()
    assert lines and lines[-1].startswith("DONE "), f"child did not reach its end:\n{tail}"
    _, count, bad = lines[-1].split()
    assert int(bad) == 0, "outcomes that were neither bytes nor a typed exception:\n" + "\n".join(lines[:-1])
    return int(count)


def test_every_reachable_object_dumps_or_raises_a_typed_error():
    """Stdlib (and numpy) objects from gc and module namespaces, what they
    refer to, every type met, and one of each iterator we can make (code
    line and position iterators, dict/set/list iterators and their reversed
    forms, re scanners, generators, coroutines, async generators, itertools
    objects, ...), through `dumps` at protocols 2 and 5 and `msgpack.packb`."""
    count = run_child("objects")
    assert count > 30_000  # the collection really reached the interpreter's objects


def test_native_api_given_wrong_arguments_raises_typed_errors():
    """Every function and class of `turbodill._native` called with wrong
    types, None, huge and negative ints, wrong arity and stray keywords; a
    Pickler memo primed with nonsense and then dumped; a MsgpackCodec whose
    registry entries lie about their classes."""
    count = run_child("api")
    assert count > 10_000


def run_code(code):
    """Run `code` in a fresh interpreter; its stdout, once it exited cleanly."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_iterators_of_a_never_readied_type_raise_like_pickle():
    """3.11's `co_lines()` and `co_positions()` iterators are of static types
    CPython never readied (no MRO): examining the type crashed. They raise
    pickle's error and message, as an UnpicklableError (also a TypeError,
    as dill raises)."""
    out = run_code(
        "import pickle, turbodill\n"
        "code = compile('1', '', 'eval')\n"
        "for make in (code.co_lines, code.co_positions):\n"
        "    for proto in range(6):\n"
        "        for wrap in (lambda x: x, lambda x: [x], lambda x: {'k': x}):\n"
        "            obj = make()\n"
        "            try:\n"
        "                turbodill.dumps(wrap(obj), proto)\n"
        "            except turbodill.UnpicklableError as e:\n"
        "                got = e\n"
        "            try:\n"
        "                pickle.dumps(wrap(obj), proto)\n"
        "            except Exception as e:\n"
        "                expected = e\n"
        "            assert isinstance(got, (TypeError, type(expected))), (got, expected)\n"
        "            assert str(got) == str(expected), (got, expected)\n"
        "            print(str(got).split(':')[0])\n"
    )
    # On 3.11 "can't pickle 'line_iterator' object: <...>", pickle's message
    # for a type without `__reduce_ex__`; later versions ready these types.
    assert [line.split(" '")[1].split("'")[0] for line in out.splitlines()] == ["line_iterator"] * 18 + [
        "positions_iterator"
    ] * 18


def test_pickler_state_is_never_borrowed_while_python_code_runs():
    """A memo entry's `__del__`, run when the memo is replaced or cleared,
    may use the pickler: it sees the new state (a borrow held across the
    drop was a PanicException)."""
    out = run_code(
        "import io, turbodill\n"
        "p = turbodill.Pickler(io.BytesIO())\n"
        "class Watcher:\n"
        "    def __del__(self):\n"
        "        print(len(p.memo), len(p.memo.copy()))\n"
        "class SetsMemo:\n"
        "    def __reduce__(self):\n"
        "        p.memo = {1: (0, Watcher())}\n"
        "        return (int, ())\n"
        "steps = [p.clear_memo, p.memo.clear, lambda: setattr(p, 'memo', {}),\n"
        "         lambda: p.__init__(io.BytesIO()), lambda: p.dump(SetsMemo())]\n"
        "for step in steps:\n"
        "    p.memo = {1: (0, Watcher())}\n"
        "    step()\n"
    )
    lines = out.splitlines()
    # Steps 1-4 drop the Watcher once the new memo is in. The dump keeps the
    # primed Watcher and drops the one the hook set when its own memo,
    # holding what it pickled, goes back in.
    assert lines[:4] == ["0 0"] * 4 and len(lines) == 5
    held, copied = lines[4].split()
    assert held == copied and int(held) > 0


def test_primed_memo_index_beyond_the_counter_is_a_value_error():
    import io

    import turbodill

    p = turbodill.Pickler(io.BytesIO())
    with pytest.raises(ValueError, match="memo index 4294967295 is too large"):
        p.memo = {1: (2**32 - 1, object())}
    with pytest.raises(OverflowError):
        p.memo = {1: (2**32, object())}
    p.memo = {1: (2**31 - 1, "x")}
    p.dump("x")  # a BINGET/LONG_BINGET of the primed index, no overflow
    p.dump(["y"])


def test_msgpack_registry_entry_that_lies_about_a_tuple_is_an_encode_error():
    """A registry entry saying "NamedTuple" for a class that is not a tuple
    made the encoder read a list subclass with the tuple macros (SIGSEGV)."""
    out = run_code(
        "import turbodill.msgpack as m\n"
        "from turbodill._native import MsgpackCodec\n"
        "class Items(list): pass\n"
        "class Wide(int): pass\n"
        "for obj in (Items(range(100)), Wide(10**300), object()):\n"
        "    entry = ('n', 1, ())\n"
        "    m._by_type[type(obj)] = entry\n"
        "    for pack in (m.packb, MsgpackCodec(m.EncodeError, m.DecodeError, {type(obj): entry}, {}).packb):\n"
        "        try:\n"
        "            pack([obj])\n"
        "        except m.EncodeError as e:\n"
        "            print(e)\n"
        "    del m._by_type[type(obj)]\n"
    )
    lines = out.splitlines()
    assert lines == [
        f"'{name}' is registered as a NamedTuple but is not a tuple at obj[0]"
        for name in ("Items", "Items", "Wide", "Wide", "object", "object")
    ]


def test_picklebuffer_memory_is_held_across_file_write():
    """A payload of 64 KiB or more goes to `file.write` after a flush; a
    write that releases the PickleBuffer and then shrinks the bytearray
    under it must find the memory still exported by the pickler (BufferError),
    not freed under a slice the pickler holds."""
    out = run_code(
        "import pickle, turbodill\n"
        "data = bytearray(b'x' * 100_000)\n"
        "pb = pickle.PickleBuffer(data)\n"
        "class File:\n"
        "    def write(self, chunk):\n"
        "        pb.release()\n"
        "        try:\n"
        "            data.clear()\n"
        "        except BufferError as e:\n"
        "            print('pinned:', e)\n"
        "turbodill.dump(['head', pb], File(), 5)\n"
        "print(len(data))\n"
    )
    # Pinned for the flush before the payload and for the payload (the
    # released PickleBuffer itself, handed over as the C pickler hands it);
    # the last write (STOP) comes after the pickler let go: cleared.
    assert out.splitlines() == ["pinned: Existing exports of data: object cannot be re-sized"] * 2 + ["0"]


def test_out_of_memory_for_the_output_is_a_memory_error():
    """The address space capped just above what the interpreter uses: a
    large payload written at once, and output grown write by write, run out
    of memory for the output buffer. MemoryError (it was a PanicException),
    and the next dump works."""
    out = run_code(
        "import pickle, resource, turbodill\n"
        "text = 'x' * (48 << 20)\n"
        "ints = [1000] * (6 << 20)  # 18 MiB of BININT2, three bytes at a time\n"
        "status = open('/proc/self/status').read()\n"
        "vm = int(status.split('VmSize:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (8 << 20), resource.RLIM_INFINITY))\n"
        "for obj in (text, ints):\n"
        "    for proto in (2, 5):\n"
        "        try:\n"
        "            turbodill.dumps(obj, proto)\n"
        "        except MemoryError as e:\n"
        "            print('MemoryError', 'out of memory' in str(e))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "print(turbodill.dumps([1, 'a'], 5) == pickle.dumps([1, 'a'], 5))\n"
    )
    assert out.splitlines() == ["MemoryError True"] * 4 + ["True"]
