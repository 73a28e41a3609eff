"""CPython's own pickle compatibility suite, wired to turbodill.

`test.pickletester` ships with the interpreter; `Lib/test/test_pickle.py`
wires its abstract test classes to the C pickler. We wire the same classes
(subclassing test_pickle's concrete ones where they add tests) to
turbodill's pickler, loading with the C unpickler as turbodill does.
"""

import collections
import io
import pickle
import unittest

import _pickle
import test.test_pickle as stdlib_wiring
from test import pickletester

import turbodill


class ByValueLocalFunctions:
    """The suite expects a local function to be unpicklable. turbodill pickles
    it by value by design; this checks that instead, for the same three
    variants (plain, no __module__, __name__ == __qualname__)."""

    def test_local_lookup_error(self):
        def f(x):
            return x + 1

        def check():
            for proto in range(pickle.HIGHEST_PROTOCOL + 1):
                g = self.loads(self.dumps(f, proto))
                self.assertEqual(g(1), 2)
                self.assertEqual(g.__qualname__, f.__qualname__)

        check()
        del f.__module__
        check()
        f.__name__ = f.__qualname__
        check()


class TurbodillPicklerTests(ByValueLocalFunctions, stdlib_wiring.PyPicklerTests):
    pickler = turbodill.Pickler
    unpickler = _pickle.Unpickler


class TurbodillDumpPyLoadTests(ByValueLocalFunctions, stdlib_wiring.PyPicklerTests):
    """Our bytes, read by the pure-Python unpickler (a second reader)."""

    pickler = turbodill.Pickler
    unpickler = pickle._Unpickler


class TurbodillUnpicklerTests(stdlib_wiring.PyUnpicklerTests):
    """turbodill.Unpickler against the unpickling suite."""

    unpickler = turbodill.Unpickler
    bad_stack_errors = (pickle.UnpicklingError,)
    truncated_errors = (pickle.UnpicklingError,)


class TurbodillInMemoryTests(ByValueLocalFunctions, pickletester.AbstractPickleTests, unittest.TestCase):
    def dumps(self, arg, protocol=None, **kwargs):
        return turbodill.dumps(arg, protocol, **kwargs)

    def loads(self, buf, **kwds):
        return turbodill.loads(buf, **kwds)

    # As for the stdlib's in-memory tests: there is no writer to delay.
    test_framed_write_sizes_with_delayed_writer = None


class TurbodillModuleTests(pickletester.AbstractPickleModuleTests, unittest.TestCase):
    dump = staticmethod(turbodill.dump)
    dumps = staticmethod(turbodill.dumps)
    load = staticmethod(turbodill.load)
    loads = staticmethod(turbodill.loads)
    Pickler = turbodill.Pickler
    Unpickler = turbodill.Unpickler


class TurbodillPersPicklerTests(stdlib_wiring.PyPersPicklerTests):
    pickler = turbodill.Pickler
    unpickler = _pickle.Unpickler


class TurbodillIdPersPicklerTests(stdlib_wiring.PyIdPersPicklerTests):
    pickler = turbodill.Pickler
    unpickler = _pickle.Unpickler


class TurbodillPicklerUnpicklerObjectTests(
    pickletester.AbstractPicklerUnpicklerObjectTests, unittest.TestCase
):
    pickler_class = turbodill.Pickler
    unpickler_class = _pickle.Unpickler


class TurbodillDispatchTableTests(pickletester.AbstractDispatchTableTests, unittest.TestCase):
    pickler_class = turbodill.Pickler

    def get_dispatch_table(self):
        return pickle.dispatch_table.copy()


class TurbodillChainDispatchTableTests(
    pickletester.AbstractDispatchTableTests, unittest.TestCase
):
    pickler_class = turbodill.Pickler

    def get_dispatch_table(self):
        return collections.ChainMap({}, pickle.dispatch_table)


class TurbodillPicklerHookTests(pickletester.AbstractHookTests, unittest.TestCase):
    class CustomPicklerClass(turbodill.Pickler, pickletester.AbstractCustomPicklerClass):
        pass

    pickler_class = CustomPicklerClass
