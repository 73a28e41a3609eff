"""Sample objects of the standard library's types, by dill's names for
them (``ListType``, ``LockType``...): ``turbodill.objects`` once
``turbodill.load_types()`` has run, and ``turbodill.objtypes``."""

import array
import collections
import contextlib
import datetime
import decimal
import fractions
import functools
import io
import itertools
import logging
import operator
import queue
import re
import struct
import sys
import threading
import types
import weakref


class _Plain:
    def method(self):
        return None


def _function():
    return None


def _generator():
    yield 1


@contextlib.contextmanager
def _context():
    yield


def _cell():
    value = 1
    return (lambda: value).__closure__[0]


def _traceback():
    try:
        raise ValueError
    except ValueError as exc:
        return exc.__traceback__


# What the weak references among the samples refer to.
_REFERENT = _Plain()


def samples():
    """``{name: sample}``, made afresh (each call makes new objects)."""
    plain = _Plain()
    ordered = collections.OrderedDict(a=1)
    referent = _REFERENT
    made = {
        "TypeType": type,
        "ObjectType": object(),
        "NoneType": None,
        "BooleanType": True,
        "IntType": 1,
        "FloatType": 1.0,
        "ComplexType": 1j,
        "StringType": "",
        "UnicodeType": "",
        "BytesType": b"",
        "ByteArrayType": bytearray(b"a"),
        "TupleType": (),
        "ListType": [],
        "DictType": {},
        "DictionaryType": {},
        "SetType": set(),
        "FrozenSetType": frozenset(),
        "SliceType": slice(1),
        "XRangeType": range(1),
        "EllipsisType": Ellipsis,
        "NotImplementedType": NotImplemented,
        "MemoryType": memoryview(b"a"),
        "ListIteratorType": iter([]),
        "TupleIteratorType": iter(()),
        "SetIteratorType": iter(set()),
        "XRangeIteratorType": iter(range(1)),
        "BytesIteratorType": iter(b""),
        "BytearrayIteratorType": iter(bytearray()),
        "ListReverseiteratorType": reversed([]),
        "DictionaryKeyIteratorType": iter({}),
        "DictionaryValueIteratorType": iter({}.values()),
        "DictionaryItemIteratorType": iter({}.items()),
        "DictKeysType": {}.keys(),
        "DictValuesType": {}.values(),
        "DictItemsType": {}.items(),
        "DictProxyType": types.MappingProxyType({}),
        "OdictKeysType": ordered.keys(),
        "OdictValuesType": ordered.values(),
        "OdictItemsType": ordered.items(),
        "OdictIteratorType": iter(ordered),
        "OrderedDictType": ordered,
        "CounterType": collections.Counter(),
        "DefaultDictType": collections.defaultdict(list),
        "DequeType": collections.deque(),
        "ChainType": itertools.chain(),
        "FunctionType": _function,
        "LambdaType": lambda: None,
        "GeneratorType": _generator(),
        "GeneratorContextManagerType": _context(),
        "MethodType": plain.method,
        "ClassInstanceType": plain,
        "ClassObjectType": _Plain,
        "BuiltinFunctionType": len,
        "BuiltinMethodType": [].append,
        "MethodDescriptorType": list.append,
        "WrapperDescriptorType": object.__init__,
        "MethodWrapperType": plain.__init__,
        "ClassMethodDescriptorType": dict.__dict__["fromkeys"],
        "GetSetDescriptorType": types.FunctionType.__dict__["__dict__"],
        "MemberDescriptorType": types.FunctionType.__dict__["__globals__"],
        "StaticMethodType": staticmethod(_function),
        "ClassMethodType": classmethod(_function),
        "PropertyType": property(),
        "SuperType": super(_Plain, plain),
        "CodeType": _function.__code__,
        "CellType": _cell(),
        "ModuleType": types,
        "FrameType": sys._getframe(),
        "TracebackType": _traceback(),
        "ExceptionType": RuntimeError(),
        "PartialType": functools.partial(int),
        "AttrGetterType": operator.attrgetter("a"),
        "ItemGetterType": operator.itemgetter(0),
        "MethodCallerType": operator.methodcaller("a"),
        "CountType": itertools.count(),
        "CycleType": itertools.cycle(()),
        "RepeatType": itertools.repeat(0),
        "ProductType": itertools.product(),
        "PermutationsType": itertools.permutations(()),
        "CombinationsType": itertools.combinations((), 0),
        "IzipType": zip(),
        "FilterType": logging.Filter(),
        "CallableIteratorType": iter(int, 1),
        "SREPatternType": re.compile(""),
        "SREMatchType": re.match("", ""),
        "SREScannerType": re.compile("").scanner(""),
        "DateTimeType": datetime.datetime(2000, 1, 1),
        "TZInfoType": datetime.tzinfo(),
        "DecimalType": decimal.Decimal(1),
        "FractionType": fractions.Fraction(1),
        "ArrayType": array.array("i"),
        "StructType": struct.Struct("i"),
        "LockType": threading.Lock(),
        "RLockType": threading.RLock(),
        "QueueType": queue.Queue(),
        "ReferenceType": weakref.ref(referent),
        "DeadReferenceType": weakref.ref(_Plain()),
        "ProxyType": weakref.proxy(referent),
        "CallableProxyType": weakref.proxy(_function),
        "WeakKeyDictionaryType": weakref.WeakKeyDictionary(),
        "WeakValueDictionaryType": weakref.WeakValueDictionary(),
        "WeakSetType": weakref.WeakSet(),
        "LoggerType": logging.getLogger(),
        "NamedLoggerType": logging.getLogger(__name__),
        "StreamHandlerType": logging.StreamHandler(),
        "NullHandlerType": logging.NullHandler(),
        "FormatterType": logging.Formatter(),
        "LogRecordType": logging.makeLogRecord({}),
        "UnicodeIOType": io.StringIO(),
        "InputType": io.BytesIO(),
        "OutputType": io.BytesIO(),
        "BufferType": memoryview(b""),
    }
    return made
