"""Reference cycles through a Pickler are collected, as the stdlib's are.

A `Pickler` holds its file's `write`, its `buffer_callback` and its memo; its
memo proxy holds the pickler. Each test builds one cycle through one of
them, drops it, and checks with weak references that `gc.collect()` frees
it, for `pickle.Pickler` (the reference behaviour) and `turbodill.Pickler`.
"""

import gc
import io
import pickle
import weakref

import pytest

import turbodill

# The C pickler takes weak references only in a subclass; turbodill's
# base class takes them itself.
PICKLERS = [
    type("StdlibPickler", (pickle.Pickler,), {}),
    turbodill.Pickler,
    type("TurbodillSubclass", (turbodill.Pickler,), {}),
]


class File:
    """A file object that knows its pickler."""

    def __init__(self):
        self.data = io.BytesIO()
        self.pickler = None

    def write(self, data):
        return self.data.write(data)


class Holder:
    pass


def assert_cycle_collected(make):
    """`make()` returns the objects of a cycle; nothing else holds them."""
    gc.collect()
    refs = [weakref.ref(obj) for obj in make()]
    gc.collect()
    alive = [ref() for ref in refs]
    assert alive == [None] * len(refs), f"not collected: {[type(o).__name__ for o in alive if o is not None]}"


@pytest.mark.parametrize("Pickler", PICKLERS)
def test_cycle_through_the_files_write(Pickler):
    def make():
        f = File()
        f.pickler = Pickler(f)
        f.pickler.dump([1, 2])
        return [f, f.pickler]

    assert_cycle_collected(make)


@pytest.mark.parametrize("Pickler", PICKLERS)
def test_cycle_through_the_memo_proxy(Pickler):
    def make():
        p = Pickler(io.BytesIO())
        p.keep = p.memo
        return [p]

    assert_cycle_collected(make)


@pytest.mark.parametrize("Pickler", PICKLERS)
def test_cycle_through_the_memo(Pickler):
    class PicklesItself(Pickler):
        def persistent_id(self, obj):
            return "me" if obj is self else None

    def make():
        p = PicklesItself(io.BytesIO())
        holder = Holder()
        holder.pickler = p
        holder.items = [p]
        p.dump(holder)  # the memo now holds `holder` (and its dict and list)
        assert len(p.memo.copy()) >= 2
        return [p, holder]

    assert_cycle_collected(make)


@pytest.mark.parametrize("Pickler", PICKLERS)
def test_cycle_through_a_primed_memo(Pickler):
    def make():
        p = Pickler(io.BytesIO())
        holder = Holder()
        holder.pickler = p
        p.memo = {id(holder): (0, holder)}
        return [p, holder]

    assert_cycle_collected(make)


@pytest.mark.parametrize("Pickler", PICKLERS)
@pytest.mark.parametrize("hook", ["persistent_id", "reducer_override"])
def test_cycle_through_hooks_bound_to_the_pickler(Pickler, hook):
    class Hooked(Pickler):
        def my_hook(self, obj):
            return None if hook == "persistent_id" else NotImplemented

    def make():
        p = Hooked(io.BytesIO())
        setattr(p, hook, p.my_hook)  # an instance attribute: pickler -> method -> pickler
        p.dump([Holder()])
        return [p]

    assert_cycle_collected(make)


@pytest.mark.parametrize("Pickler", PICKLERS)
def test_cycle_through_the_buffer_callback(Pickler):
    def make():
        holder = Holder()
        holder.buffers = []
        holder.pickler = Pickler(io.BytesIO(), 5, buffer_callback=holder.buffers.append)
        holder.buffers.append(holder)
        holder.pickler.dump(pickle.PickleBuffer(b"data"))
        assert len(holder.buffers) == 2
        return [holder, holder.pickler]

    assert_cycle_collected(make)


def test_codec_cycle_through_its_registry():
    """A MsgpackCodec whose registry dict holds the codec (through an
    object that can be weakly referenced, which the codec cannot)."""

    def make():
        by_type = {}
        holder = Holder()
        holder.codec = turbodill._native.MsgpackCodec(ValueError, ValueError, by_type, {})
        by_type["holder"] = holder
        return [holder]

    assert_cycle_collected(make)


def test_pickler_without_cycles_is_freed_at_once():
    """Reference counting alone frees a pickler and what it held."""
    f = File()
    p = turbodill.Pickler(f)
    p.dump([Holder()])
    refs = [weakref.ref(f), weakref.ref(p)]
    gc.disable()
    try:
        del f, p
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()
