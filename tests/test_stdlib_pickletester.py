"""CPython's own pickle compatibility suite, wired to turbodill.

`test.pickletester` ships with the interpreter; `Lib/test/test_pickle.py`
wires its abstract test classes to the C pickler. We wire the same classes
(subclassing test_pickle's concrete ones where they add tests) to
turbodill's pickler, loading with the C unpickler as turbodill does.
"""

import _pickle
import collections
import pickle
import unittest

import test.test_pickle as stdlib_wiring
from test import pickletester

import turbodill


class ByValueOverrides:
    """Three tests of the suite expect errors where turbodill, by design,
    pickles by value: a local function (`test_local_lookup_error`) and the
    staticmethod/classmethod descriptors at the end of `test_py_methods` and
    `test_c_methods`. These overrides run the same cases and check that they
    pickle and work instead; the rest of those tests is run as written."""

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

    def _descriptors_round_trip(self, run_suite_test, descriptors, call):
        real_assert_raises = self.assertRaises

        def expect_by_value(exc, dumps, descr, proto):
            # The suite's `assertRaises(TypeError, self.dumps, descr, proto)`.
            if dumps != self.dumps or descr not in descriptors:
                return real_assert_raises(exc, dumps, descr, proto)
            self.assertEqual(call(self.loads(self.dumps(descr, proto))), call(descr))

        self.assertRaises = expect_by_value
        try:
            run_suite_test()
        finally:
            del self.assertRaises

    def test_py_methods(self):
        def descriptors():
            cls = pickletester.PyMethodsTest
            return [cls.__dict__["cheese"], cls.__dict__["wine"]]

        # PyMethodsTest is made (as a global) by the suite's test itself.
        def call(descr):
            return descr.__func__() if isinstance(descr, staticmethod) else descr.__func__.__name__

        class Lazy(list):
            def __contains__(self, item):
                return item in descriptors()

        self._descriptors_round_trip(super().test_py_methods, Lazy(), call)

    def test_c_methods(self):
        descriptors = [bytearray.__dict__["maketrans"], dict.__dict__["fromkeys"]]

        def call(descr):
            return descr.__get__(None, bytearray)(b"a", b"b") if isinstance(descr, staticmethod) else type(descr)

        self._descriptors_round_trip(super().test_c_methods, descriptors, call)


class TurbodillPicklerTests(ByValueOverrides, stdlib_wiring.PyPicklerTests):
    pickler = turbodill.Pickler
    unpickler = _pickle.Unpickler


class TurbodillDumpPyLoadTests(ByValueOverrides, stdlib_wiring.PyPicklerTests):
    """Our bytes, read by the pure-Python unpickler (a second reader)."""

    pickler = turbodill.Pickler
    unpickler = pickle._Unpickler


class TurbodillUnpicklerTests(stdlib_wiring.PyUnpicklerTests):
    """turbodill.Unpickler against the unpickling suite."""

    unpickler = turbodill.Unpickler
    bad_stack_errors = (pickle.UnpicklingError,)
    truncated_errors = (pickle.UnpicklingError,)


class TurbodillInMemoryTests(ByValueOverrides, pickletester.AbstractPickleTests, unittest.TestCase):
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


class TurbodillPicklerUnpicklerObjectTests(pickletester.AbstractPicklerUnpicklerObjectTests, unittest.TestCase):
    pickler_class = turbodill.Pickler
    unpickler_class = _pickle.Unpickler


class TurbodillDispatchTableTests(pickletester.AbstractDispatchTableTests, unittest.TestCase):
    pickler_class = turbodill.Pickler

    def get_dispatch_table(self):
        return pickle.dispatch_table.copy()


class TurbodillChainDispatchTableTests(pickletester.AbstractDispatchTableTests, unittest.TestCase):
    pickler_class = turbodill.Pickler

    def get_dispatch_table(self):
        return collections.ChainMap({}, pickle.dispatch_table)


class TurbodillPicklerHookTests(pickletester.AbstractHookTests, unittest.TestCase):
    class CustomPicklerClass(turbodill.Pickler, pickletester.AbstractCustomPicklerClass):
        pass

    pickler_class = CustomPicklerClass
