"""Classes and their instances: plain, slots, descriptors, ABCs, metaclasses,
enums, dataclasses, typing constructs, exceptions."""

import typing

from case import C, eq, raises, that

# --- plain classes -------------------------------------------------------------

C(
    "class",
    """
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def norm1(self):
            return abs(self.x) + abs(self.y)
    result = Point
    """,
    lambda P: eq(P(1, -2).norm1(), 3),
)
C(
    "instance",
    """
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def norm1(self):
            return abs(self.x) + abs(self.y)
    result = Point(3, 4)
    """,
    lambda p: eq((p.norm1(), type(p).__name__), (7, "Point")),
)
C(
    "class and instance in one payload",
    """
    class Thing:
        pass
    result = (Thing, Thing())
    """,
    lambda t: that(isinstance(t[1], t[0]) and type(t[1]) is t[0]),
)
C(
    "class and instance across payloads",
    """
    class Thing:
        pass
    result = (Thing, Thing())
    """,
    lambda a, b: that(isinstance(b, a), f"{type(b)!r} is not {a!r}"),
    payloads=2,
)
C(
    "two instances across payloads share class",
    """
    class Thing:
        def __init__(self, v):
            self.v = v
    result = (Thing(1), Thing(2))
    """,
    lambda a, b: that(type(a) is type(b) and (a.v, b.v) == (1, 2)),
    payloads=2,
)
C(
    "class qualname, module and doc",
    '''
    class Documented:
        """Docs here."""
    result = (Documented, Documented.__module__, Documented.__qualname__)
    ''',
    lambda t: eq((t[0].__doc__, t[0].__module__, t[0].__qualname__), ("Docs here.", t[1], t[2])),
)
C(
    "class attributes of many kinds",
    """
    class Holder:
        n = 1
        s = "text"
        lst = [1, 2]
        d = {"k": (1, 2)}
        none = None
        fn = staticmethod(len)
    result = Holder
    """,
    lambda H: eq((H.n, H.s, H.lst, H.d, H.none, H.fn("ab")), (1, "text", [1, 2], {"k": (1, 2)}, None, 2)),
)
C(
    "class attribute referencing the class",
    """
    class Node:
        pass
    Node.self_ref = Node
    result = Node
    """,
    lambda N: that(N.self_ref is N),
)
C(
    "class with instance of itself as attribute",
    """
    class Singleton:
        pass
    Singleton.instance = Singleton()
    result = Singleton
    """,
    lambda S: that(type(S.instance) is S),
)
C(
    "instance with cycle",
    """
    class Node:
        def __init__(self):
            self.next = self
    result = Node()
    """,
    lambda n: that(n.next is n),
)
C(
    "slots class instance",
    """
    class Slotted:
        __slots__ = ("a", "b")
        def __init__(self):
            self.a = 1
            self.b = [2]
    result = Slotted()
    """,
    lambda o: eq((o.a, o.b, hasattr(o, "__dict__")), (1, [2], False)),
)
C(
    "slots with unset slot",
    """
    class Partial:
        __slots__ = ("set_", "unset")
        def __init__(self):
            self.set_ = 1
    result = Partial()
    """,
    lambda o: eq(o.set_, 1) and raises(AttributeError, getattr, o, "unset"),
)
C(
    "slots and dict together",
    """
    class Both:
        __slots__ = ("a", "__dict__")
    o = Both()
    o.a = 1
    o.extra = 2
    result = o
    """,
    lambda o: eq((o.a, o.extra), (1, 2)),
)
C(
    "property getter and setter",
    """
    class Temp:
        def __init__(self):
            self._c = 0
        @property
        def f(self):
            return self._c * 9 / 5 + 32
        @f.setter
        def f(self, v):
            self._c = (v - 32) * 5 / 9
    result = Temp
    """,
    lambda T: (lambda t: (setattr(t, "f", 212), eq(t._c, 100.0))[1])(T()),
)
C(
    "property with deleter and doc",
    """
    class P:
        def _get(self):
            return 1
        def _del(self):
            type(self).deleted = True
        x = property(_get, None, _del, "the x")
    result = P
    """,
    lambda P: (lambda o: (delattr(o, "x"), eq((P.deleted, P.x.__doc__), (True, "the x")))[1])(P()),
)
C(
    "classmethod and staticmethod",
    """
    class K:
        base = 10
        @classmethod
        def make(cls, v):
            return cls.base + v
        @staticmethod
        def pure(v):
            return v * 2
    result = K
    """,
    lambda K: eq((K.make(1), K.pure(2), K().make(3)), (11, 4, 13)),
)
C(
    "bound classmethod",
    """
    class K:
        @classmethod
        def who(cls):
            return cls.__name__
    result = K.who
    """,
    lambda m: eq(m(), "K"),
)
C(
    "bound method of instance",
    """
    class Greeter:
        def __init__(self, name):
            self.name = name
        def greet(self):
            return "hi " + self.name
    result = Greeter("ann").greet
    """,
    lambda m: eq(m(), "hi ann"),
)
C(
    "method attached after class statement",
    """
    class A:
        pass
    def method(self):
        return "attached"
    A.method = method
    result = A
    """,
    lambda A: eq(A().method(), "attached"),
)
C(
    "lambda attached as method",
    """
    class A:
        pass
    A.method = lambda self: "lambda method"
    result = A()
    """,
    lambda a: eq(a.method(), "lambda method"),
)
C(
    "bound method of lambda attached after class",
    """
    class A:
        pass
    A.method = lambda self: "lambda method"
    result = A().method
    """,
    lambda m: eq(m(), "lambda method"),
    defect=9,
)
C(
    "function bound by hand with __get__",
    """
    class Foo:
        def __init__(self):
            def f2(self):
                return "bound by hand"
            self.f2 = f2.__get__(self)
    result = Foo()
    """,
    lambda o: eq(o.f2(), "bound by hand"),
    defect=9,
)
C(
    "hand-bound method alone",
    """
    class Foo:
        pass
    def helper(self):
        return type(self).__name__
    result = helper.__get__(Foo())
    """,
    lambda m: eq(m(), "Foo"),
    defect=9,
)
C(
    "method stored under another name",
    """
    class A:
        def real(self):
            return "real"
        alias = real
    result = A().alias
    """,
    lambda m: eq(m(), "real"),
)
C(
    "types.MethodType on instance",
    """
    import types
    class A:
        pass
    a = A()
    a.m = types.MethodType(lambda self, x: (self is a, x), a)
    result = a
    """,
    lambda a: eq(a.m(1), (True, 1)),
    defect=9,
)
C(
    "super() in method",
    """
    class Base:
        def hello(self):
            return "base"
    class Child(Base):
        def hello(self):
            return "child+" + super().hello()
    result = Child()
    """,
    lambda o: eq(o.hello(), "child+base"),
)
C(
    "super() in __init__ chain",
    """
    class A:
        def __init__(self):
            self.log = ["A"]
    class B(A):
        def __init__(self):
            super().__init__()
            self.log.append("B")
    class D(B):
        def __init__(self):
            super().__init__()
            self.log.append("D")
    result = D
    """,
    lambda D: eq(D().log, ["A", "B", "D"]),
)
C(
    "__class__ cell",
    """
    class Me:
        def cls(self):
            return __class__
    result = Me
    """,
    lambda M: that(M().cls() is M),
)
C(
    "super() with diamond inheritance",
    """
    class A:
        def who(self):
            return ["A"]
    class B(A):
        def who(self):
            return ["B"] + super().who()
    class C_(A):
        def who(self):
            return ["C"] + super().who()
    class D(B, C_):
        def who(self):
            return ["D"] + super().who()
    result = D
    """,
    lambda D: eq(D().who(), ["D", "B", "C", "A"]),
)
C(
    "inheritance from a dynamic class",
    """
    class Base:
        x = 1
        def f(self):
            return self.x
    class Derived(Base):
        x = 2
    result = (Base, Derived)
    """,
    lambda t: that(issubclass(t[1], t[0]) and t[1]().f() == 2),
)
C(
    "dynamic subclass across payloads",
    """
    class Base:
        pass
    class Derived(Base):
        pass
    result = (Base, Derived)
    """,
    lambda B, D: that(issubclass(D, B)),
    payloads=2,
)
C(
    "subclass of builtin list",
    """
    class Stack(list):
        def peek(self):
            return self[-1]
    s = Stack([1, 2])
    s.name = "st"
    result = s
    """,
    lambda s: eq((s.peek(), list(s), s.name), (2, [1, 2], "st")),
)
C(
    "subclass of dict with __missing__",
    """
    class Default(dict):
        def __missing__(self, k):
            return k * 2
    result = Default(a=1)
    """,
    lambda d: eq((d["a"], d[3]), (1, 6)),
)
C(
    "subclass of int",
    """
    class Meters(int):
        def __repr__(self):
            return f"{int(self)}m"
    result = Meters(5)
    """,
    lambda m: eq((m + 1, repr(m)), (6, "5m")),
)
C(
    "subclass of str",
    """
    class Tag(str):
        def wrap(self):
            return f"<{self}>"
    result = Tag("b")
    """,
    lambda t: eq(t.wrap(), "<b>"),
)
C(
    "subclass of tuple with __new__",
    """
    class Pair(tuple):
        def __new__(cls, a, b):
            return super().__new__(cls, (a, b))
        def __getnewargs__(self):
            return tuple(self)
    result = Pair(1, 2)
    """,
    lambda p: eq((tuple(p), type(p).__name__), ((1, 2), "Pair")),
)
C(
    "class with __reduce__",
    """
    class Reduced:
        def __init__(self, v):
            self.v = v
        def __reduce__(self):
            return (type(self), (self.v * 2,))
    result = Reduced(1)
    """,
    lambda r: eq(r.v, 2),
)
C(
    "class with __getstate__/__setstate__",
    """
    class Stateful:
        def __init__(self):
            self.a = 1
            self.cache = "drop me"
        def __getstate__(self):
            return {"a": self.a}
        def __setstate__(self, st):
            self.__dict__.update(st)
            self.cache = "rebuilt"
    result = Stateful()
    """,
    lambda s: eq((s.a, s.cache), (1, "rebuilt")),
)
C(
    "class with __getnewargs_ex__",
    """
    class KwOnly:
        def __new__(cls, *, v):
            obj = super().__new__(cls)
            obj.v = v
            return obj
        def __getnewargs_ex__(self):
            return (), {"v": self.v}
    result = KwOnly(v=3)
    """,
    lambda o: eq(o.v, 3),
)
C(
    "class with __eq__ and __hash__ in a set",
    """
    class Key:
        def __init__(self, k):
            self.k = k
        def __eq__(self, o):
            return self.k == o.k
        def __hash__(self):
            return hash(self.k)
    result = {Key(1), Key(2)}
    """,
    lambda s: eq(len(s), 2) and that(type(next(iter(s)))(1) in s),
)
C(
    "instance as dict key",
    """
    class Key:
        def __init__(self, k):
            self.k = k
        def __eq__(self, o):
            return isinstance(o, Key) and self.k == o.k
        def __hash__(self):
            return hash(self.k)
    result = {Key("a"): 1}
    """,
    lambda d: eq(d[type(next(iter(d)))("a")], 1),
)
C(
    "callable instance",
    """
    class Mult:
        def __init__(self, k):
            self.k = k
        def __call__(self, x):
            return x * self.k
    result = Mult(3)
    """,
    lambda m: eq(m(4), 12),
)
C(
    "iterator class",
    """
    class Count:
        def __init__(self, n):
            self.i, self.n = 0, n
        def __iter__(self):
            return self
        def __next__(self):
            if self.i >= self.n:
                raise StopIteration
            self.i += 1
            return self.i
    result = Count(3)
    """,
    lambda c: eq(list(c), [1, 2, 3]),
)
C(
    "context manager class",
    """
    class Ctx:
        def __enter__(self):
            return "in"
        def __exit__(self, *exc):
            return True
    result = Ctx()
    """,
    lambda c: eq(c.__enter__(), "in") and that(c.__exit__(None, None, None)),
)
C(
    "class with __init_subclass__",
    """
    class Plugin:
        registry = []
        def __init_subclass__(cls, key=None, **kw):
            super().__init_subclass__(**kw)
            cls.key = key
            Plugin.registry.append(cls.__name__)
    class CSV(Plugin, key="csv"):
        pass
    result = (Plugin, CSV)
    """,
    lambda t: eq((t[1].key, t[0].registry), ("csv", ["CSV"])),
)
C(
    "subclassing loaded class runs __init_subclass__",
    """
    class Plugin:
        def __init_subclass__(cls, **kw):
            super().__init_subclass__(**kw)
            cls.seen = True
    result = Plugin
    """,
    lambda P: that(type("New", (P,), {}).seen),
)
C(
    "descriptor with __set_name__",
    """
    class Field:
        def __set_name__(self, owner, name):
            self.name = "_" + name
        def __get__(self, obj, typ=None):
            return getattr(obj, self.name, "unset")
        def __set__(self, obj, v):
            setattr(obj, self.name, v)
    class Model:
        title = Field()
    m = Model()
    m.title = "x"
    result = m
    """,
    lambda m: eq((m.title, m._title, type(m).__dict__["title"].name), ("x", "x", "_title")),
)
C(
    "metaclass",
    """
    class Meta(type):
        def __new__(mcs, name, bases, ns):
            ns["made_by"] = "Meta"
            return super().__new__(mcs, name, bases, ns)
        def describe(cls):
            return cls.__name__ + " by " + cls.made_by
    class Made(metaclass=Meta):
        pass
    result = Made
    """,
    lambda M: eq((M.describe(), type(M).__name__), ("Made by Meta", "Meta")),
)
C(
    "metaclass __call__",
    """
    class Single(type):
        def __call__(cls, *a):
            if not hasattr(cls, "_inst"):
                cls._inst = super().__call__(*a)
            return cls._inst
    class Only(metaclass=Single):
        pass
    result = Only
    """,
    lambda O: that(O() is O()),
)
C(
    "class created with type()",
    "result = type('Dyn', (object,), {'x': 1, 'f': lambda self: self.x + 1})",
    lambda D: eq((D().f(), D.__name__), (2, "Dyn")),
)
C(
    "class created with types.new_class",
    """
    import types
    result = types.new_class("NC", (), {}, lambda ns: ns.update(v=lambda self: "nc"))
    """,
    lambda N: eq(N().v(), "nc"),
)
C(
    "class with __class_getitem__",
    """
    class Box:
        def __class_getitem__(cls, item):
            return f"Box of {item.__name__}"
    result = Box
    """,
    lambda B: eq(B[int], "Box of int"),
)
C(
    "class with __getattr__ fallback",
    """
    class Fallback:
        def __getattr__(self, name):
            return name.upper()
    o = Fallback()
    o.real = 1
    result = o
    """,
    lambda o: eq((o.real, o.anything), (1, "ANYTHING")),
)
C(
    "delegating __getattr__ client (Elasticsearch-style)",
    """
    class Transport:
        def __init__(self):
            self.hosts = ["localhost:9200"]
        def perform(self, method, path):
            return (method, path)
    class IndicesClient:
        def __init__(self, client):
            self.client = client
        def __getattr__(self, name):
            return getattr(self.client, name)
        def create(self, index):
            return self.perform("PUT", "/" + index)
    class Client:
        def __init__(self):
            self.transport = Transport()
            self.indices = IndicesClient(self)
        def __getattr__(self, name):
            return getattr(self.transport, name)
    result = Client()
    """,
    lambda c: eq((c.indices.create("logs"), c.hosts), (("PUT", "/logs"), ["localhost:9200"])),
    defect=10,
)
C(
    "delegating __getattr__ reading a missing attribute",
    """
    class Proxy:
        def __init__(self, target):
            self._target = target
        def __getattr__(self, name):
            return getattr(self._target, name)
    result = Proxy([1, 2, 3])
    """,
    lambda p: eq(p.count(2), 1),
    defect=10,
)
C(
    "class with __getattribute__ override",
    """
    class Logged:
        def __init__(self):
            object.__setattr__(self, "x", 5)
        def __getattribute__(self, name):
            if name == "secret":
                return "intercepted"
            return object.__getattribute__(self, name)
    result = Logged()
    """,
    lambda o: eq((o.x, o.secret), (5, "intercepted")),
)
C(
    "class with __setattr__ validation",
    """
    class Strict:
        def __init__(self):
            self.a = 1
        def __setattr__(self, name, value):
            if name.startswith("_"):
                raise AttributeError(name)
            object.__setattr__(self, name, value)
    result = Strict()
    """,
    lambda o: eq(o.a, 1) and raises(AttributeError, setattr, o, "_p", 1),
)
C(
    "instance with __dict__ holding functions",
    """
    class Bag:
        pass
    b = Bag()
    b.op = lambda x: -x
    result = b
    """,
    lambda b: eq(b.op(2), -2),
)
C(
    "class nested in class",
    """
    class Outer:
        class Inner:
            def v(self):
                return "inner"
        def make(self):
            return self.Inner()
    result = Outer
    """,
    lambda O: eq((O().make().v(), O.Inner.__qualname__.split(".")[-2:]), ("inner", ["Outer", "Inner"])),
)
C(
    "instance of nested class",
    """
    class Outer:
        class Inner:
            pass
    result = Outer.Inner()
    """,
    lambda i: eq(type(i).__name__, "Inner"),
)

# --- abstract classes -----------------------------------------------------------

C(
    "abstract class",
    """
    import abc
    class Shape(abc.ABC):
        @abc.abstractmethod
        def area(self):
            ...
    class Square(Shape):
        def area(self):
            return 4
    result = (Shape, Square)
    """,
    lambda t: eq(t[1]().area(), 4) and raises(TypeError, t[0]) and that(isinstance(t[1](), t[0])),
)
C(
    "abstract class register",
    """
    import abc
    class Readable(abc.ABC):
        pass
    Readable.register(int)
    result = Readable
    """,
    lambda R: that(isinstance(1, R)),
)
C(
    "ABCMeta metaclass and abstract property",
    """
    import abc
    class Base(metaclass=abc.ABCMeta):
        @property
        @abc.abstractmethod
        def name(self):
            ...
    class Impl(Base):
        @property
        def name(self):
            return "impl"
    result = Impl
    """,
    lambda I: eq(I().name, "impl"),
)
C(
    "abc.abstractclassmethod/staticmethod/property",
    """
    import abc
    class Old(abc.ABC):
        @abc.abstractclassmethod
        def make(cls):
            ...
        @abc.abstractstaticmethod
        def util():
            ...
        @abc.abstractproperty
        def prop(self):
            ...
    class Concrete(Old):
        @classmethod
        def make(cls):
            return cls
        @staticmethod
        def util():
            return 1
        @property
        def prop(self):
            return 2
    result = (Old, Concrete)
    """,
    lambda t: raises(TypeError, t[0]) and eq((t[1].make() is t[1], t[1].util(), t[1]().prop), (True, 1, 2)),
    defect=6,
)
C(
    "abstract class instance check across payloads",
    """
    import abc
    class Base(abc.ABC):
        pass
    class Impl(Base):
        pass
    result = (Base, Impl())
    """,
    lambda B, i: that(isinstance(i, B)),
    payloads=2,
)
C(
    "collections.abc subclass",
    """
    import collections.abc
    class Bag(collections.abc.Mapping):
        def __init__(self, d):
            self._d = d
        def __getitem__(self, k):
            return self._d[k]
        def __iter__(self):
            return iter(self._d)
        def __len__(self):
            return len(self._d)
    result = Bag({"a": 1})
    """,
    lambda b: eq((dict(b), b.get("z", 0), "a" in b), ({"a": 1}, 0, True)),
)

# --- enums ------------------------------------------------------------------------

C(
    "enum class",
    """
    import enum
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
    result = Color
    """,
    lambda E: eq((E(2).name, [m.value for m in E]), ("GREEN", [1, 2])),
)
C(
    "enum member",
    """
    import enum
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
    result = Color.GREEN
    """,
    lambda m: eq((m.name, m.value, type(m).RED.value), ("GREEN", 2, 1)),
)
C(
    "enum member identity within payload",
    """
    import enum
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
    result = [Color.GREEN, Color]
    """,
    lambda t: that(t[0] is t[1].GREEN and t[1](2) is t[0]),
)
C(
    "enum member identity across payloads",
    """
    import enum
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
    result = (Color, Color.GREEN)
    """,
    lambda E, m: that(m is E.GREEN),
    payloads=2,
)
C(
    "IntEnum",
    """
    import enum
    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2
    result = [Level.HIGH, Level]
    """,
    lambda t: that(t[0] == 2 and t[0] > t[1].LOW and t[0] is t[1].HIGH),
)
C(
    "str mixin enum",
    """
    import enum
    class Color(str, enum.Enum):
        RED = "red"
        GREEN = "green"
    result = [Color.GREEN, Color]
    """,
    lambda t: that(t[0] is t[1].GREEN and t[0] == "green" and t[0].upper() == "GREEN"),
)
C(
    "StrEnum",
    """
    import enum
    class Mode(enum.StrEnum):
        READ = enum.auto()
        WRITE = enum.auto()
    result = [Mode.WRITE, Mode]
    """,
    lambda t: that(t[0] is t[1].WRITE and t[0] == "write"),
)
C(
    "int mixin enum",
    """
    import enum
    class Code(int, enum.Enum):
        OK = 200
        MISSING = 404
    result = [Code.MISSING, Code]
    """,
    lambda t: that(t[0] is t[1].MISSING and t[0] + 1 == 405),
)
C(
    "Flag enum combination",
    """
    import enum
    class Perm(enum.Flag):
        R = 4
        W = 2
        X = 1
    result = [Perm.R | Perm.W, Perm]
    """,
    lambda t: that(t[1].R in t[0] and t[1].X not in t[0] and t[0] == t[1].R | t[1].W),
)
C(
    "IntFlag",
    """
    import enum
    class Bits(enum.IntFlag):
        A = 1
        B = 2
    result = [Bits.A | Bits.B, Bits]
    """,
    lambda t: that(t[0] == 3 and t[1].B in t[0]),
)
C(
    "enum with methods and properties",
    """
    import enum
    class Planet(enum.Enum):
        EARTH = (5.97e24, 6.37e6)
        MARS = (6.42e23, 3.39e6)
        def __init__(self, mass, radius):
            self.mass = mass
            self.radius = radius
        @property
        def ratio(self):
            return self.mass / self.radius
        def heavier(self, other):
            return self.mass > other.mass
    result = Planet
    """,
    lambda P: that(P.EARTH.heavier(P.MARS) and P.MARS.radius == 3.39e6),
)
C(
    "enum with auto and aliases",
    """
    import enum
    class Shape(enum.Enum):
        SQUARE = enum.auto()
        CIRCLE = enum.auto()
        ROUND = 2
    result = Shape
    """,
    lambda S: that(S.ROUND is S.CIRCLE and len(S) == 2 and S.SQUARE.value == 1),
)
C(
    "enum with _missing_ classmethod",
    """
    import enum
    class Loose(enum.Enum):
        A = "a"
        @classmethod
        def _missing_(cls, value):
            return cls.A
    result = Loose
    """,
    lambda L: that(L("zzz") is L.A),
)
C(
    "enum unique decorator",
    """
    import enum
    @enum.unique
    class U(enum.Enum):
        X = 1
        Y = 2
    result = U.Y
    """,
    lambda m: eq(m.value, 2),
)
C(
    "enum created with functional API",
    """
    import enum
    Animal = enum.Enum("Animal", "ANT BEE CAT")
    result = [Animal.BEE, Animal]
    """,
    lambda t: that(t[0] is t[1].BEE and t[0].value == 2),
)
C(
    "enum member as dict key",
    """
    import enum
    class K(enum.Enum):
        A = 1
    result = {K.A: "a"}
    """,
    lambda d: eq(d[type(next(iter(d))).A], "a"),
)

# --- dataclasses ------------------------------------------------------------------

C(
    "dataclass",
    """
    import dataclasses
    @dataclasses.dataclass
    class Item:
        name: str
        qty: int = 1
    result = Item("pen", 3)
    """,
    lambda i: eq((i.name, i.qty, repr(i).split("(")[1]), ("pen", 3, "name='pen', qty=3)")),
)
C(
    "dataclass class constructs and compares",
    """
    import dataclasses
    @dataclasses.dataclass(order=True)
    class V:
        x: int
        y: int = 0
    result = V
    """,
    lambda V: that(
        V(1) == V(1, 0) and V(1) < V(2) and [f.name for f in __import__("dataclasses").fields(V)] == ["x", "y"]
    ),
)
C(
    "frozen dataclass",
    """
    import dataclasses
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: int
    result = Frozen(1)
    """,
    lambda f: (
        eq(f.a, 1)
        and raises(__import__("dataclasses").FrozenInstanceError, setattr, f, "a", 2)
        and eq(hash(f), hash(type(f)(1)))
    ),
)
C(
    "slots dataclass",
    """
    import dataclasses
    @dataclasses.dataclass(slots=True)
    class S:
        a: int
        b: list = dataclasses.field(default_factory=list)
    result = S(1)
    """,
    lambda s: eq((s.a, s.b, hasattr(s, "__dict__")), (1, [], False)),
)
C(
    "dataclass field default_factory and metadata",
    """
    import dataclasses
    @dataclasses.dataclass
    class Conf:
        tags: list = dataclasses.field(default_factory=lambda: ["x"], metadata={"doc": "tags"})
        hidden: int = dataclasses.field(default=0, repr=False, compare=False)
    result = Conf
    """,
    lambda Cf: eq(
        (Cf().tags, __import__("dataclasses").fields(Cf)[0].metadata["doc"], "hidden" in repr(Cf())),
        (["x"], "tags", False),
    ),
)
C(
    "dataclass kw_only and InitVar and ClassVar",
    """
    import dataclasses
    import typing
    @dataclasses.dataclass(kw_only=True)
    class Init:
        a: int
        scale: dataclasses.InitVar[int] = 1
        total: typing.ClassVar[int] = 0
        def __post_init__(self, scale):
            self.a *= scale
    result = Init
    """,
    lambda I: eq((I(a=2, scale=3).a, I.total, [f.name for f in __import__("dataclasses").fields(I)]), (6, 0, ["a"])),
)
C(
    "dataclass fields preserved",
    """
    import dataclasses
    @dataclasses.dataclass
    class P:
        x: int
        y: int = 2
    result = P
    """,
    lambda P: (
        eq(__import__("dataclasses").asdict(P(1)), {"x": 1, "y": 2})
        and eq(__import__("dataclasses").replace(P(1), y=5).y, 5)
    ),
)
C(
    "dataclass inheritance",
    """
    import dataclasses
    @dataclasses.dataclass
    class Base:
        a: int
    @dataclasses.dataclass
    class Child(Base):
        b: int = 0
    result = Child(1, 2)
    """,
    lambda c: eq((c.a, c.b, [f.name for f in __import__("dataclasses").fields(c)]), (1, 2, ["a", "b"])),
)
C(
    "dataclass class and instance across payloads",
    """
    import dataclasses
    @dataclasses.dataclass
    class D:
        v: int
    result = (D, D(1))
    """,
    lambda D, d: that(isinstance(d, D) and d == D(1)),
    payloads=2,
)
C(
    "dataclass with method using super",
    """
    import dataclasses
    @dataclasses.dataclass
    class Base:
        def tag(self):
            return "base"
    @dataclasses.dataclass
    class Sub(Base):
        n: int = 1
        def tag(self):
            return "sub>" + super().tag()
    result = Sub()
    """,
    lambda s: eq(s.tag(), "sub>base"),
)
C(
    "slots frozen dataclass",
    """
    import dataclasses
    @dataclasses.dataclass(frozen=True, slots=True)
    class Pt:
        x: int
        def shifted(self):
            return type(self)(self.x + 1)
        def __str__(self):
            return "Pt:" + str(self.x)
    result = Pt(1)
    """,
    lambda p: eq((p.shifted().x, str(p)), (2, "Pt:1")),
)

# --- typing -----------------------------------------------------------------------

C(
    "NamedTuple",
    """
    import typing
    class P(typing.NamedTuple):
        x: int
        y: int = 0
        def total(self):
            return self.x + self.y
    result = [P(1, 2), P]
    """,
    lambda t: that(isinstance(t[0], t[1]) and t[0].total() == 3 and t[1](5).y == 0 and t[1]._fields == ("x", "y")),
    defect=8,
)
C(
    "NamedTuple class alone",
    """
    import typing
    class Emp(typing.NamedTuple):
        name: str
        id: int = 3
    result = Emp
    """,
    lambda E: eq((E("a").id, E.__annotations__), (3, {"name": str, "id": int})),
    defect=8,
)
C(
    "collections.namedtuple",
    """
    import collections
    Pt = collections.namedtuple("Pt", "x y", defaults=[0])
    result = [Pt(1), Pt]
    """,
    lambda t: that(isinstance(t[0], t[1]) and t[0] == (1, 0) and t[0].x == 1),
)
C(
    "namedtuple instance alone",
    """
    import collections
    Pt = collections.namedtuple("Pt", "x y")
    result = Pt(1, 2)
    """,
    lambda p: eq((p.x, p.y, p._asdict()), (1, 2, {"x": 1, "y": 2})),
)
C(
    "namedtuple subclass with methods",
    """
    import collections
    class Vec(collections.namedtuple("Vec", "x y")):
        __slots__ = ()
        def __add__(self, o):
            return Vec(self.x + o.x, self.y + o.y)
    result = Vec(1, 2)
    """,
    lambda v: eq(tuple(v + v), (2, 4)),
)
C(
    "TypedDict",
    """
    import typing
    class Movie(typing.TypedDict):
        title: str
        year: int
    result = Movie
    """,
    lambda M: eq(
        (M(title="x", year=1), M.__annotations__["year"], M.__required_keys__),
        ({"title": "x", "year": 1}, int, frozenset({"title", "year"})),
    ),
)
C(
    "TypedDict total=False",
    """
    import typing
    class Opt(typing.TypedDict, total=False):
        a: int
    result = Opt
    """,
    lambda O: eq((O.__total__, O.__optional_keys__), (False, frozenset({"a"}))),
)
C(
    "Protocol runtime_checkable",
    """
    import typing
    @typing.runtime_checkable
    class Closable(typing.Protocol):
        def close(self) -> None:
            ...
    class Res:
        def close(self):
            pass
    result = (Closable, Res())
    """,
    lambda t: that(isinstance(t[1], t[0]) and not isinstance(1, t[0])),
)
C(
    "TypeVar defined here",
    """
    import typing
    T = typing.TypeVar("T")
    result = T
    """,
    lambda T: eq((T.__name__, type(T).__name__), ("T", "TypeVar")),
    defect=5,
)
C(
    "TypeVar with bound and constraints",
    """
    import typing
    N = typing.TypeVar("N", int, float)
    B = typing.TypeVar("B", bound=str, covariant=True)
    result = (N, B)
    """,
    lambda t: eq((t[0].__constraints__, t[1].__bound__, t[1].__covariant__), ((int, float), str, True)),
    defect=5,
)
C(
    "TypeVar identity across payloads",
    """
    import typing
    T = typing.TypeVar("T")
    result = (T, [T])
    """,
    lambda a, b: that(b[0] is a),
    payloads=2,
    defect=5,
)
C(
    "Generic class",
    """
    import typing
    T = typing.TypeVar("T")
    class Box(typing.Generic[T]):
        def __init__(self, item: T):
            self.item = item
        def get(self) -> T:
            return self.item
    result = Box
    """,
    lambda B: eq((B[int](3).get(), B.__parameters__[0].__name__), (3, "T")),
    defect=5,
)
C(
    "Generic subclass with concrete parameter",
    """
    import typing
    T = typing.TypeVar("T")
    class Base(typing.Generic[T]):
        pass
    class IntBase(Base[int]):
        pass
    result = IntBase
    """,
    lambda I: eq((I.__orig_bases__[0].__args__, I.__mro__[1].__name__), ((int,), "Base")),
    defect=5,
)
C(
    "ParamSpec decorator typing",
    """
    import typing
    P = typing.ParamSpec("P")
    R = typing.TypeVar("R")
    def passthrough(fn: typing.Callable[P, R]) -> typing.Callable[P, R]:
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            return fn(*args, **kwargs)
        return inner
    result = passthrough(lambda a, b: a + b)
    """,
    lambda f: eq(f(1, 2), 3),
    defect=5,
)
C(
    "function with typing annotations",
    """
    import typing
    def f(a: typing.List[int], b: typing.Optional[typing.Dict[str, int]] = None) -> typing.Union[int, str]:
        return sum(a)
    result = f
    """,
    lambda f: eq((f([1, 2]), f.__annotations__["a"]), (3, list[int])),
)
C(
    "class with typing annotations",
    """
    import typing
    class Annotated_:
        a: int
        b: typing.Literal["x", "y"] = "x"
        c: typing.Final = 3
        d: typing.ClassVar[int] = 4
        e: "Annotated_"
    result = Annotated_
    """,
    lambda A: eq(
        (A.__annotations__["a"], A.__annotations__["b"], A.b, A.d, A.__annotations__["e"]),
        (int, typing.Literal["x", "y"], "x", 4, "Annotated_"),
    ),
)
C(
    "typing annotation with a local class",
    """
    import typing
    class Local:
        pass
    def f(x: typing.List[Local]) -> typing.Optional[Local]:
        return None
    result = f
    """,
    lambda f: eq(f.__annotations__["x"].__args__[0].__name__, "Local"),
)
C(
    "typing generic alias of local class",
    """
    import typing
    class Local:
        pass
    result = typing.Dict[str, Local]
    """,
    lambda a: eq((a.__origin__, a.__args__[0], a.__args__[1].__name__), (dict, str, "Local")),
)
C(
    "builtin generic alias list[int]",
    "result = (list[int], dict[str, tuple[int, ...]], int | None)",
    lambda t: eq(t, (list[int], dict[str, tuple[int, ...]], int | None)),
)
C(
    "typing.NewType",
    """
    import typing
    UserId = typing.NewType("UserId", int)
    result = UserId
    """,
    lambda U: eq((U(5), U.__name__), (5, "UserId")),
)
C(
    "typing.Callable and Any annotations on lambda",
    """
    import typing
    f = lambda x: x
    f.__annotations__ = {"x": typing.Any, "return": typing.Callable[[int], str]}
    result = f
    """,
    lambda f: eq(f.__annotations__["return"], typing.Callable[[int], str]),
)
C(
    "Protocol generic",
    """
    import typing
    T = typing.TypeVar("T")
    class Getter(typing.Protocol[T]):
        def get(self) -> T:
            ...
    class IntGetter:
        def get(self) -> int:
            return 1
    result = (Getter, IntGetter)
    """,
    lambda t: eq(t[1]().get(), 1) and that(t[0].__parameters__[0].__name__ == "T"),
    defect=5,
)

# --- exceptions ----------------------------------------------------------------

C(
    "exception subclass raised",
    """
    class AppError(Exception):
        pass
    def fail():
        raise AppError("bad")
    result = (AppError, fail)
    """,
    lambda t: raises(t[0], t[1]),
)
C(
    "exception subclass instance",
    """
    class AppError(ValueError):
        def __init__(self, msg, code):
            super().__init__(msg, code)
            self.code = code
    result = AppError("m", 3)
    """,
    lambda e: eq((e.args, e.code, isinstance(e, ValueError)), (("m", 3), 3, True)),
)
C(
    "exception with custom attributes and str",
    """
    class HTTPError(Exception):
        def __init__(self, status):
            super().__init__(status)
            self.status = status
        def __str__(self):
            return f"HTTP {self.status}"
    result = HTTPError(404)
    """,
    lambda e: eq((str(e), e.status), ("HTTP 404", 404)),
)
C(
    "exception hierarchy caught by base",
    """
    class Base(Exception):
        pass
    class Leaf(Base):
        pass
    def boom():
        raise Leaf()
    result = (Base, boom)
    """,
    lambda B, f: raises(B, f),
    payloads=2,
)
C(
    "exception with cause and notes",
    """
    class Wrapped(Exception):
        pass
    try:
        try:
            1 / 0
        except ZeroDivisionError as inner:
            raise Wrapped("outer") from inner
    except Wrapped as e:
        e.add_note("a note")
        result = e
    """,
    lambda e: eq((type(e.__cause__), e.__notes__, e.args), (ZeroDivisionError, ["a note"], ("outer",))),
)
C(
    "builtin exception instance",
    "result = [KeyError('k'), OSError(2, 'nope', 'file'), StopIteration(5)]",
    lambda t: eq((t[0].args, t[1].errno, t[1].filename, t[2].value), (("k",), 2, "file", 5)),
)
C(
    "ExceptionGroup",
    """
    class Mine(Exception):
        pass
    result = ExceptionGroup("many", [Mine("a"), ValueError("b")])
    """,
    lambda g: eq(
        (len(g.exceptions), type(g.exceptions[0]).__name__, g.split(ValueError)[0].exceptions[0].args),
        (2, "Mine", ("b",)),
    ),
)
C(
    "exception class with class attribute",
    """
    class Coded(Exception):
        code = 42
    result = Coded
    """,
    lambda E: eq((E.code, E("x").code, issubclass(E, Exception)), (42, 42, True)),
)

# --- more from real code and the peers' suites ----------------------------------

C(
    "class body reading a global",
    """
    class Settings:
        level = DEFAULT_LEVEL * 2
        def get(self):
            return self.level + DEFAULT_LEVEL
    result = Settings
    """,
    lambda S: eq(S().get(), 9),
    top="DEFAULT_LEVEL = 3",
)
C(
    "class and function referring to each other",
    """
    def make_node(v):
        return Node(v)
    class Node:
        def __init__(self, v):
            self.v = v
        def child(self):
            return make_node(self.v + 1)
    result = make_node
    """,
    lambda f: eq(f(1).child().child().v, 3),
)
C(
    "decorator class with __call__",
    """
    class CountCalls:
        def __init__(self, fn):
            self.fn = fn
            self.calls = 0
        def __call__(self, *a):
            self.calls += 1
            return self.fn(*a)
    @CountCalls
    def square(x):
        return x * x
    result = square
    """,
    lambda f: eq((f(3), f(4), f.calls), (9, 16, 2)),
)
C(
    "property subclass",
    """
    class cached(property):
        pass
    class K:
        @cached
        def v(self):
            return "v"
    result = K()
    """,
    lambda k: eq((k.v, type(type(k).__dict__["v"]).__name__), ("v", "cached")),
    defect=6,  # property subclasses, as abc.abstractproperty
)
C(
    "staticmethod attached after class",
    """
    class Tools:
        pass
    Tools.twice = staticmethod(lambda x: 2 * x)
    Tools.build = classmethod(lambda cls: cls())
    result = Tools
    """,
    lambda T: eq((T.twice(4), type(T.build()) is T), (8, True)),
)
C(
    "slots inheritance",
    """
    class A:
        __slots__ = ("a",)
    class B(A):
        __slots__ = ("b",)
        def __init__(self):
            self.a, self.b = 1, 2
    result = B()
    """,
    lambda o: eq((o.a, o.b), (1, 2)),
)
C(
    "slots with __weakref__",
    """
    import weakref
    class W:
        __slots__ = ("v", "__weakref__")
        def __init__(self):
            self.v = 1
    w = W()
    result = (w, weakref.ref(w))
    """,
    lambda t: that(t[1]() is t[0] and t[0].v == 1),
)
C(
    "enum with __str__ and __format__",
    """
    import enum
    class Status(enum.Enum):
        ACTIVE = "active"
        def __str__(self):
            return self.value.upper()
        def __format__(self, spec):
            return "fmt:" + self.value
    result = Status.ACTIVE
    """,
    lambda s: eq((str(s), f"{s}"), ("ACTIVE", "fmt:active")),
)
C(
    "dataclass with field(init=False) and __post_init__",
    """
    import dataclasses
    @dataclasses.dataclass
    class Rect:
        w: int
        h: int
        area: int = dataclasses.field(init=False)
        def __post_init__(self):
            self.area = self.w * self.h
    result = Rect
    """,
    lambda R: eq((R(2, 3).area, [f.name for f in __import__("dataclasses").fields(R)]), (6, ["w", "h", "area"])),
)
C(
    "dataclass eq=False unsafe_hash",
    """
    import dataclasses
    @dataclasses.dataclass(unsafe_hash=True)
    class Key:
        a: int
    result = {Key(1): "one"}
    """,
    lambda d: eq(d[type(next(iter(d)))(1)], "one"),
)
C(
    "exception raised inside generator",
    """
    class Stop(Exception):
        pass
    def gen():
        yield 1
        raise Stop("after one")
    result = (gen, Stop)
    """,
    lambda g, S: (lambda it: (next(it), raises(S, next, it))[1])(g()),
    payloads=2,
)
C(
    "getset and member descriptors",
    """
    class Slot:
        __slots__ = ("m",)
    result = (float.__dict__["real"], Slot.__dict__["m"], float.__dict__["fromhex"])
    """,
    lambda t: eq((t[0].__get__(2.5), t[1].__name__, t[2].__get__(None, float)("0x1p1")), (2.5, "m", 2.0)),
)
C(
    "global used only by a nested function",
    """
    def outer():
        def inner():
            return NESTED_G
        return inner()
    result = outer
    """,
    lambda f: eq(f(), "nested"),
    top="NESTED_G = 'nested'",
)
C(
    "global used only in a class body inside a function",
    """
    def make():
        class K:
            v = CLASS_G
        return K.v
    result = make
    """,
    lambda f: eq(f(), 11),
    top="CLASS_G = 11",
)
C(
    "WeakSet identity kept",
    """
    import weakref
    class Item:
        pass
    keep = Item()
    ws = weakref.WeakSet([keep])
    result = (keep, ws, ws)
    """,
    lambda t: that(t[1] is t[2] and t[0] in t[1]),
)
C(
    "typing.overload and final decorators",
    """
    import typing
    class API:
        @typing.overload
        def get(self, k: int) -> int: ...
        @typing.overload
        def get(self, k: str) -> str: ...
        def get(self, k):
            return k
        @typing.final
        def done(self):
            return "done"
    result = API
    """,
    lambda A: eq((A().get(3), A().done()), (3, "done")),
)
C(
    "class changed between payloads",
    """
    class Mutable:
        x = 1
    def first():
        Mutable.x = 1
        return Mutable
    def second():
        Mutable.x = 2
        return Mutable
    result = (first, second)
    """,
    lambda a, b: eq((a.x, b.x), (1, 2)),
    payloads=2,
    deferred=True,
    differs={
        "dill": "one class across payloads, the later payload's state wins, as in cloudpickle (dill makes a class per payload)"
    },
)
C(
    "file read back after the file is gone",
    """
    import os, tempfile
    fd, path = tempfile.mkstemp(prefix="parity-gone-")
    os.write(fd, b"contents")
    os.close(fd)
    fh = open(path)
    os.unlink(path)
    result = fh
    """,
    lambda f: eq(f.read(), "contents"),
    differs={"cloudpickle": "file handles reopen the file by name, as dill does (cloudpickle ships their contents)"},
)
C(
    "class decorator adding methods",
    """
    def add_repr(cls):
        cls.__repr__ = lambda self: f"<{type(self).__name__} {vars(self)}>"
        return cls
    @add_repr
    class Rec:
        def __init__(self):
            self.a = 1
    result = Rec()
    """,
    lambda r: eq(repr(r), "<Rec {'a': 1}>"),
)
C(
    "metaclass with __prepare__",
    """
    class Ordered(type):
        @classmethod
        def __prepare__(mcs, name, bases):
            return {"prepared": True}
    class K(metaclass=Ordered):
        x = 1
    result = K
    """,
    lambda K: eq((K.prepared, K.x, type(K).__name__), (True, 1, "Ordered")),
)
C(
    "classmethod using super()",
    """
    class Base:
        @classmethod
        def create(cls):
            return ["base", cls.__name__]
    class Sub(Base):
        @classmethod
        def create(cls):
            return ["sub"] + super().create()
    result = Sub
    """,
    lambda S: eq(S.create(), ["sub", "base", "Sub"]),
)
C(
    "slots class with property and default __getstate__",
    """
    class Temp:
        __slots__ = ("_c",)
        def __init__(self, c):
            self._c = c
        @property
        def f(self):
            return self._c * 9 / 5 + 32
    result = Temp(100)
    """,
    lambda t: eq(t.f, 212.0),
)
C(
    "class whose __module__ names no module",
    """
    class Stray:
        def v(self):
            return "stray"
    Stray.__module__ = "no_such_module_anywhere"
    result = Stray
    """,
    lambda S: eq(S().v(), "stray"),
)
C(
    "instance with class-level default overridden",
    """
    class Cfg:
        debug = False
        def is_debug(self):
            return self.debug
    c = Cfg()
    c.debug = True
    result = (c, Cfg())
    """,
    lambda t: eq((t[0].is_debug(), t[1].is_debug()), (True, False)),
)
C(
    "dynamic class instances across payloads stay the same class",
    """
    class Job:
        def __init__(self, n):
            self.n = n
    result = (Job(1), Job(2), Job)
    """,
    lambda a, b, J: that(type(a) is type(b) is J),
    payloads=3,
)
C(
    "str mixin enum member across payloads",
    """
    import enum
    class Color(str, enum.Enum):
        RED = "red"
        GREEN = "green"
    result = (Color, [Color.GREEN])
    """,
    lambda E, ms: that(ms[0] is E.GREEN and ms[0] == "green"),
    payloads=2,
)
C(
    "IntFlag member across payloads",
    """
    import enum
    class Bits(enum.IntFlag):
        A = 1
        B = 2
    result = (Bits, Bits.A | Bits.B)
    """,
    lambda B, v: that(type(v) is B and B.A in v),
    payloads=2,
)
C(
    "NamedTuple instance across payloads",
    """
    import typing
    class P(typing.NamedTuple):
        x: int
    result = (P, P(1))
    """,
    lambda P, p: that(isinstance(p, P) and p.x == 1),
    payloads=2,
    defect=8,
)
C(
    "namedtuple instance across payloads",
    """
    import collections
    Pt = collections.namedtuple("Pt", "x y")
    result = (Pt, Pt(1, 2))
    """,
    lambda P, p: that(isinstance(p, P) and p.y == 2),
    payloads=2,
)
C(
    "dataclass instance across payloads with slots",
    """
    import dataclasses
    @dataclasses.dataclass(slots=True, frozen=True)
    class Pt:
        x: int
    result = (Pt, Pt(1))
    """,
    lambda P, p: that(type(p) is P and p == P(1)),
    payloads=2,
)
C(
    "exception class across payloads caught by except",
    """
    class Retry(Exception):
        pass
    def fail():
        raise Retry("again")
    result = (Retry, fail)
    """,
    lambda R, f: raises(R, f),
    payloads=2,
)
C(
    "method attached after class across payloads",
    """
    class A:
        pass
    def extra(self):
        return "extra"
    A.extra = extra
    result = (A, A())
    """,
    lambda A, a: that(isinstance(a, A) and a.extra() == "extra"),
    payloads=2,
)
C(
    "subclass defined after first payload's class is loaded",
    """
    class Base:
        def who(self):
            return "base"
    class Sub(Base):
        def who(self):
            return "sub/" + super().who()
    result = (Base, Sub())
    """,
    lambda B, s: that(isinstance(s, B) and s.who() == "sub/base"),
    payloads=2,
)
