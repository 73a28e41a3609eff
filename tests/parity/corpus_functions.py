"""Functions: lambdas, closures, defaults, annotations, decorators, functools,
generators, coroutines, globals, builtins."""

import asyncio
import inspect
import types

from case import C, eq, raises, that

# --- lambdas and plain functions -------------------------------------------------

C("lambda", "result = lambda x: x + 1", lambda f: eq(f(1), 2))
C("lambda no args", "result = lambda: 42", lambda f: eq(f(), 42))
C("lambda varargs", "result = lambda *a, **k: (a, k)", lambda f: eq(f(1, 2, z=3), ((1, 2), {"z": 3})))
C("nested lambdas", "result = lambda x: (lambda y: x + y)", lambda f: eq(f(1)(2), 3))
C("lambda returning lambda twice", "result = lambda a: lambda b: lambda c: a * b * c", lambda f: eq(f(2)(3)(4), 24))
C("lambda default arg", "result = lambda x, y=10: x * y", lambda f: eq((f(2), f(2, 3)), (20, 6)))
C(
    "lambda default mutable",
    "result = lambda x, acc=[]: (acc.append(x), len(acc))[1]",
    lambda f: eq((f(1), f(2)), (1, 2)),
)
C("lambda kw-only", "result = lambda *, k=3: k * 2", lambda f: eq((f(), f(k=4)), (6, 8)))
C(
    "lambda positional-only",
    "result = lambda a, b, /: a - b",
    lambda f: eq(f(5, 2), 3) and raises(TypeError, lambda: f(a=5, b=2)),
)
C(
    "def with docstring",
    '''
    def documented(x):
        """Doubles x."""
        return 2 * x
    result = documented
    ''',
    lambda f: eq((f(4), f.__doc__, f.__name__), (8, "Doubles x.", "documented")),
)
C(
    "def qualname and module kept",
    """
    def where():
        return 1
    result = (where, where.__module__, where.__qualname__)
    """,
    lambda t: eq((t[0].__module__, t[0].__qualname__, t[0]()), (t[1], t[2], 1)),
)
C(
    "def annotations",
    """
    def annotated(x: int, y: "str" = "a") -> list:
        return [x, y]
    result = annotated
    """,
    lambda f: eq((f.__annotations__, f(1)), ({"x": int, "y": "str", "return": list}, [1, "a"])),
)
C(
    "def kw-only defaults",
    """
    def kwonly(a, *, b=2, c):
        return a + b + c
    result = kwonly
    """,
    lambda f: eq((f(1, c=3), f.__kwdefaults__), (6, {"b": 2})) and raises(TypeError, f, 1),
)
C(
    "def positional-only and kw-only",
    """
    def mixed(a, b=1, /, c=2, *args, d, e=5, **kw):
        return (a, b, c, args, d, e, kw)
    result = mixed
    """,
    lambda f: eq(f(0, d=4), (0, 1, 2, (), 4, 5, {})) and eq(f(0, 1, 2, 3, d=4, z=9), (0, 1, 2, (3,), 4, 5, {"z": 9})),
)
C(
    "def function attribute",
    """
    def tagged():
        return tagged.tag
    tagged.tag = "hello"
    result = tagged
    """,
    lambda f: eq((f.tag, f()), ("hello", "hello")),
)
C(
    "def renamed after definition",
    """
    def original():
        return 7
    original.__name__ = "renamed"
    original.__qualname__ = "Some.renamed"
    result = original
    """,
    lambda f: eq((f(), f.__name__, f.__qualname__), (7, "renamed", "Some.renamed")),
)
C(
    "def dict attribute referencing itself",
    """
    def selfref():
        return selfref.me is selfref
    selfref.me = selfref
    result = selfref
    """,
    lambda f: that(f() and f.me is f),
)
C(
    "recursive function",
    """
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)
    result = fib
    """,
    lambda f: eq(f(15), 610),
)
C(
    "mutually recursive functions",
    """
    def is_even(n):
        return True if n == 0 else is_odd(n - 1)
    def is_odd(n):
        return False if n == 0 else is_even(n - 1)
    result = is_even
    """,
    lambda f: eq((f(10), f(7)), (True, False)),
)
C(
    "function calling another defined function",
    """
    def helper(x):
        return x * 3
    def caller(x):
        return helper(x) + 1
    result = caller
    """,
    lambda f: eq(f(2), 7),
)
C(
    "two functions sharing globals in one payload",
    """
    def bump():
        global SHARED
        SHARED += 1
        return SHARED
    def read():
        return SHARED
    result = (bump, read)
    """,
    lambda t: eq((t[0](), t[0](), t[1]()), (1, 2, 2)),
    top="SHARED = 0",
)
C(
    "global read",
    """
    def scaled(x):
        return x * FACTOR
    result = scaled
    """,
    lambda f: eq(f(3), 21),
    top="FACTOR = 7",
)
C(
    "global written",
    """
    def count():
        global COUNTER
        COUNTER += 1
        return COUNTER
    result = count
    """,
    lambda f: eq((f(), f()), (1, 2)),
    top="COUNTER = 0",
)
C(
    "global deleted and recreated",
    """
    def reset():
        global TEMP
        del TEMP
        TEMP = "new"
        return TEMP
    result = reset
    """,
    lambda f: eq(f(), "new"),
    top="TEMP = 'old'",
)
C(
    "global dict mutated",
    """
    def remember(k, v):
        REGISTRY[k] = v
        return dict(REGISTRY)
    result = remember
    """,
    lambda f: eq(f("b", 2), {"a": 1, "b": 2}),
    top="REGISTRY = {'a': 1}",
)
C(
    "global missing at dump (NameError at call)",
    """
    def uses_missing():
        return NOT_DEFINED_ANYWHERE
    result = uses_missing
    """,
    lambda f: raises(NameError, f),
)
C(
    "global function used after load",
    """
    import math
    def hyp(a, b):
        return math.sqrt(a * a + b * b)
    result = hyp
    """,
    lambda f: eq(f(3, 4), 5.0),
)
C(
    "module alias global",
    """
    import collections as co
    result = lambda: co.Counter("abca").most_common(1)
    """,
    lambda f: eq(f(), [("a", 2)]),
)
C(
    "from-import global",
    """
    from os.path import join
    result = lambda *p: join(*p)
    """,
    lambda f: eq(f("a", "b"), "a/b"),
)
C(
    "import inside function",
    """
    def uses_json():
        import json
        return json.dumps({"a": 1})
    result = uses_json
    """,
    lambda f: eq(f(), '{"a": 1}'),
)
C(
    "builtins shadowed by a global",
    """
    def shadow():
        return len("abc")
    result = shadow
    """,
    lambda f: eq(f(), "shadowed"),
    top="def len(x):\n    return 'shadowed'",
)
C(
    "builtins used (sorted, map, zip)",
    "result = lambda xs: sorted(map(abs, xs)) + list(zip('ab', range(2)))",
    lambda f: eq(f([-2, 1]), [1, 2, ("a", 0), ("b", 1)]),
)
C(
    "builtin exception raised",
    """
    def fails(x):
        if x < 0:
            raise ValueError("negative")
        return x
    result = fails
    """,
    lambda f: eq(f(1), 1) and raises(ValueError, f, -1),
)
C(
    "datetime.strptime (lazy import needs __builtins__)",
    """
    import datetime
    result = lambda: datetime.datetime.strptime("04-01-1943", "%d-%m-%Y").year
    """,
    lambda f: eq(f(), 1943),
    defect=2,
)
C(
    "function __builtins__ in globals",
    """
    def probe():
        return "__builtins__" in globals()
    result = probe
    """,
    lambda f: eq(f(), True),
    defect=2,
)
C(
    "eval and exec in function",
    """
    def evaluate(s):
        return eval(s, {"__builtins__": __builtins__}, {"x": 3})
    result = evaluate
    """,
    lambda f: eq(f("x * 2"), 6),
)
C(
    "sys.exit with unpicklable global exit",
    """
    import sys
    def stop():
        try:
            sys.exit(3)
        except SystemExit as e:
            return e.code
    result = stop
    """,
    lambda f: eq(f(), 3),
    top="exit = (i for i in range(3))  # a generator: nobody pickles it",
    defect=4,
)
C(
    "attribute name equal to an unpicklable global",
    """
    import types
    def attr_only():
        ns = types.SimpleNamespace(gen=5)
        return ns.gen
    result = attr_only
    """,
    lambda f: eq(f(), 5),
    top="gen = (i for i in range(3))",
    defect=4,
)
C(
    "method name equal to an unpicklable global",
    """
    def joiner(xs):
        return ",".join(xs)
    result = joiner
    """,
    lambda f: eq(f(["a", "b"]), "a,b"),
    top="join = (i for i in range(3))",
    defect=4,
)
C(
    "function with unpicklable global unused",
    "result = lambda x: x * 2",
    lambda f: eq(f(2), 4),
    top="import threading\nUNUSED_SOCKETISH = (i for i in range(3))",
)
C(
    "global is a lambda",
    """
    square = lambda v: v * v
    result = lambda x: square(x) + 1
    """,
    lambda f: eq(f(3), 10),
)
C(
    "global is a class instance",
    """
    class Config:
        def __init__(self):
            self.level = 4
    CONFIG = Config()
    result = lambda: CONFIG.level
    """,
    lambda f: eq(f(), 4),
)
C(
    "globals shared between two payloads are separate",
    """
    def incr():
        global STATE
        STATE += 1
        return STATE
    result = (incr, incr)
    """,
    lambda a, b: eq((a(), a(), b()), (1, 2, 1)),
    top="STATE = 0",
    payloads=2,
)
C(
    "function code with many constants",
    "result = lambda: (1, 2.5, 'x', b'y', None, True, (1, (2, 3)), frozenset({1}), 3j, ...)",
    lambda f: eq(f(), (1, 2.5, "x", b"y", None, True, (1, (2, 3)), frozenset({1}), 3j, ...)),
)
C(
    "function with big body (EXTENDED_ARG)",
    "ns = {}\nexec('def big(x):\\n' + ''.join(f'    v{i} = x + {i}\\n' for i in range(300)) + '    return v299\\n', ns)\nresult = ns['big']",
    lambda f: eq(f(1), 300),
)
C(
    "function with comprehensions",
    "result = lambda n: ([i * i for i in range(n)], {i: i for i in range(n)}, {i % 2 for i in range(n)}, sum(i for i in range(n)))",
    lambda f: eq(f(3), ([0, 1, 4], {0: 0, 1: 1, 2: 2}, {0, 1}, 3)),
)
C(
    "function with try/finally and with",
    """
    import contextlib
    def guarded():
        log = []
        with contextlib.suppress(KeyError):
            try:
                log.append("try")
                {}["x"]
            finally:
                log.append("finally")
        return log
    result = guarded
    """,
    lambda f: eq(f(), ["try", "finally"]),
)
C(
    "function with match statement",
    """
    def describe(v):
        match v:
            case [x, y]:
                return f"pair {x} {y}"
            case {"k": k}:
                return f"key {k}"
            case _:
                return "other"
    result = describe
    """,
    lambda f: eq((f([1, 2]), f({"k": 3}), f(0)), ("pair 1 2", "key 3", "other")),
)
C(
    "function with walrus and f-strings",
    "result = lambda xs: [f'{y:02d}' for x in xs if (y := x * 2) > 2]",
    lambda f: eq(f([1, 2, 3]), ["04", "06"]),
)
C(
    "same lambda in two payloads",
    "result = (lambda: 1,) * 2",
    lambda a, b: eq((a(), b()), (1, 1)),
    payloads=2,
)
C(
    "function identity within payload",
    """
    f = lambda: 0
    result = [f, f, {"again": f}]
    """,
    lambda t: that(t[0] is t[1] is t[2]["again"]),
)

# --- closures -------------------------------------------------------------------

C(
    "closure",
    """
    def make_adder(n):
        def add(x):
            return x + n
        return add
    result = make_adder(5)
    """,
    lambda f: eq(f(1), 6),
)
C(
    "closure over several cells",
    """
    def make(a, b, c):
        return lambda: (a, b, c)
    result = make(1, "two", [3])
    """,
    lambda f: eq(f(), (1, "two", [3])),
)
C(
    "nested closures three levels",
    """
    def outer(a):
        def middle(b):
            def inner(c):
                return a + b + c
            return inner
        return middle
    result = outer(1)(10)
    """,
    lambda f: eq(f(100), 111),
)
C(
    "closure with nonlocal counter",
    """
    def counter():
        count = 0
        def inc():
            nonlocal count
            count += 1
            return count
        return inc
    c = counter()
    c(); c()
    result = c
    """,
    lambda f: eq((f(), f()), (3, 4)),
)
C(
    "closures sharing a cell",
    """
    def pair():
        value = 0
        def get():
            return value
        def put(v):
            nonlocal value
            value = v
        return get, put
    result = pair()
    """,
    lambda t: (t[1](9), eq(t[0](), 9))[1],
)
C(
    "recursive closure",
    """
    def make():
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        return fact
    result = make()
    """,
    lambda f: eq(f(6), 720),
)
C(
    "mutually recursive closures",
    """
    def make():
        def even(n):
            return True if n == 0 else odd(n - 1)
        def odd(n):
            return False if n == 0 else even(n - 1)
        return even, odd
    result = make()
    """,
    lambda t: eq((t[0](4), t[1](4), t[0](3)), (True, False, False)),
)
C(
    "closure cell holding None",
    """
    def make():
        v = None
        return lambda: v
    result = make()
    """,
    lambda f: eq(f(), None),
)
C(
    "empty closure cell",
    """
    def make():
        if False:
            late = 1
        def get():
            return late
        return get
    result = make()
    """,
    lambda f: raises(NameError, f),
)
C(
    "closure over unhashable value",
    """
    def make():
        d = {"k": [1]}
        return lambda: d["k"]
    result = make()
    """,
    lambda f: eq(f(), [1]),
)
C(
    "closure over a class",
    """
    def make():
        class Local:
            x = 3
        return lambda: Local.x
    result = make()
    """,
    lambda f: eq(f(), 3),
)
C(
    "closure over itself through a list",
    """
    def make():
        box = []
        def f():
            return box[0] is f
        box.append(f)
        return f
    result = make()
    """,
    lambda f: eq(f(), True),
)
C(
    "closure and global together",
    """
    def make(n):
        return lambda x: x * n + OFFSET
    result = make(2)
    """,
    lambda f: eq(f(3), 106),
    top="OFFSET = 100",
)
C(
    "closure cell mutated after pickle source",
    """
    def make():
        items = [1]
        f = lambda: list(items)
        items.append(2)
        return f
    result = make()
    """,
    lambda f: eq(f(), [1, 2]),
)
C(
    "lambda in list comprehension (late binding)",
    "result = [lambda: i for i in range(3)]",
    lambda fs: eq([f() for f in fs], [2, 2, 2]),
)
C(
    "lambda with bound default (early binding)",
    "result = [lambda i=i: i for i in range(3)]",
    lambda fs: eq([f() for f in fs], [0, 1, 2]),
)
C(
    "closure returned from class method",
    """
    class Factory:
        def make(self, k):
            return lambda: k * 2
    result = Factory().make(21)
    """,
    lambda f: eq(f(), 42),
)
C(
    "closure inside generator expression",
    "result = list((lambda x, j=j: x + j) for j in range(2))",
    lambda fs: eq([f(10) for f in fs], [10, 11]),
)

# --- decorators and functools --------------------------------------------------

C(
    "decorator without wraps",
    """
    def twice(fn):
        def inner(*a):
            return fn(fn(*a))
        return inner
    @twice
    def inc(x):
        return x + 1
    result = inc
    """,
    lambda f: eq(f(1), 3),
)
C(
    "functools.wraps keeps name, doc, annotations",
    '''
    import functools
    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            return fn(*a, **k)
        return wrapper
    @logged
    def area(w: int, h: int) -> int:
        """Area."""
        return w * h
    result = area
    ''',
    lambda f: eq(
        (f(2, 3), f.__name__, f.__doc__, f.__annotations__["w"], f.__wrapped__(1, 1)), (6, "area", "Area.", int, 1)
    ),
)
C(
    "decorator factory with arguments",
    """
    def times(n):
        def deco(fn):
            def run(x):
                for _ in range(n):
                    x = fn(x)
                return x
            return run
        return deco
    @times(3)
    def double(x):
        return x * 2
    result = double
    """,
    lambda f: eq(f(1), 8),
)
C(
    "functools.partial of lambda",
    """
    import functools
    result = functools.partial(lambda a, b, c=0: a + b + c, 1, c=10)
    """,
    lambda f: eq(f(2), 13),
)
C(
    "functools.partial of partial",
    """
    import functools
    def f3(a, b, c):
        return a * 100 + b * 10 + c
    result = functools.partial(functools.partial(f3, 1), 2)
    """,
    lambda f: eq(f(3), 123),
)
C(
    "functools.partialmethod",
    """
    import functools
    class Cell:
        def set_state(self, state):
            self.state = state
            return self
        set_alive = functools.partialmethod(set_state, True)
    result = Cell
    """,
    lambda cls: eq(cls().set_alive().state, True),
)
C(
    "functools.lru_cache function",
    """
    import functools
    @functools.lru_cache(maxsize=None)
    def slow(n):
        return n * n
    result = slow
    """,
    lambda f: eq((f(4), f(4), f.cache_info().hits), (16, 16, 1)),
)
C(
    "functools.cache recursive",
    """
    import functools
    @functools.cache
    def fibc(n):
        return n if n < 2 else fibc(n - 1) + fibc(n - 2)
    result = fibc
    """,
    lambda f: eq(f(60), 1548008755920),
)
C(
    "functools.singledispatch",
    """
    import functools
    @functools.singledispatch
    def kind(x):
        return "object"
    @kind.register
    def _(x: int):
        return "int"
    @kind.register(list)
    def _(x):
        return "list"
    result = kind
    """,
    lambda f: eq((f(1), f([]), f("s")), ("int", "list", "object")),
)
C(
    "functools.singledispatchmethod",
    """
    import functools
    class Fmt:
        @functools.singledispatchmethod
        def show(self, x):
            return "any"
        @show.register
        def _(self, x: int):
            return "int"
    result = Fmt
    """,
    lambda cls: eq((cls().show(1), cls().show("a")), ("int", "any")),
)
C(
    "functools.reduce with lambda",
    """
    import functools
    result = lambda xs: functools.reduce(lambda a, b: a * b, xs, 1)
    """,
    lambda f: eq(f([1, 2, 3, 4]), 24),
)
C(
    "functools.total_ordering class",
    """
    import functools
    @functools.total_ordering
    class Version:
        def __init__(self, n):
            self.n = n
        def __eq__(self, o):
            return self.n == o.n
        def __lt__(self, o):
            return self.n < o.n
    result = Version
    """,
    lambda V: that(V(1) <= V(2) and V(3) > V(2) and V(2) >= V(2)),
)
C(
    "functools.cached_property",
    """
    import functools
    class Lazy:
        calls = 0
        @functools.cached_property
        def value(self):
            type(self).calls += 1
            return 5
    result = Lazy
    """,
    lambda L: (lambda o: eq((o.value, o.value, L.calls), (5, 5, 1)))(L()),
)
C(
    "operator.itemgetter/attrgetter/methodcaller",
    """
    import operator
    result = (operator.itemgetter(1, 0), operator.attrgetter("real"), operator.methodcaller("split", ","))
    """,
    lambda t: eq((t[0]("ab"), t[1](3), t[2]("a,b")), (("b", "a"), 3, ["a", "b"])),
)
C(
    "contextlib.contextmanager function",
    """
    import contextlib
    @contextlib.contextmanager
    def tag(log):
        log.append("<")
        yield len(log)
        log.append(">")
    result = tag
    """,
    lambda cm: (lambda log: (cm(log).__enter__(), eq(log, ["<"]))[1])([]),
)
C(
    "staticmethod-wrapped lambda in dict",
    "result = {'s': staticmethod(lambda: 3), 'c': classmethod(lambda cls: cls)}",
    lambda d: eq((d["s"].__func__(), d["c"].__func__(int)), (3, int)),
)

# --- generators and coroutines -------------------------------------------------

C(
    "generator function",
    """
    def countdown(n):
        while n:
            yield n
            n -= 1
    result = countdown
    """,
    lambda g: eq(list(g(3)), [3, 2, 1]),
)
C(
    "generator with send",
    """
    def accumulate():
        total = 0
        while True:
            x = yield total
            total += x
    result = accumulate
    """,
    lambda g: (lambda it: (next(it), it.send(2), eq(it.send(3), 5))[2])(g()),
)
C(
    "generator yield from",
    """
    def inner():
        yield 1
        return "done"
    def outer():
        r = yield from inner()
        yield r
    result = outer
    """,
    lambda g: eq(list(g()), [1, "done"]),
)
C(
    "generator closure",
    """
    def make(limit):
        def gen():
            yield from range(limit)
        return gen
    result = make(3)
    """,
    lambda g: eq(list(g()), [0, 1, 2]),
)
C(
    "generator raising StopIteration value",
    """
    def g():
        yield 1
        return 2
    result = g
    """,
    lambda g: (lambda it: (next(it), eq(raises(StopIteration, next, it), True))[1])(g()),
)
C(
    "async function",
    """
    async def add(a, b):
        return a + b
    result = add
    """,
    lambda f: eq(asyncio.run(f(1, 2)), 3) and that(inspect.iscoroutinefunction(f)),
)
C(
    "async function awaiting another",
    """
    import asyncio
    async def inner(x):
        await asyncio.sleep(0)
        return x * 2
    async def outer(x):
        return await inner(x) + 1
    result = outer
    """,
    lambda f: eq(asyncio.run(f(4)), 9),
)
C(
    "async generator",
    """
    async def agen(n):
        for i in range(n):
            yield i
    async def collect(n):
        return [x async for x in agen(n)]
    result = collect
    """,
    lambda f: eq(asyncio.run(f(3)), [0, 1, 2]),
)
C(
    "async with and gather",
    """
    import asyncio
    class Res:
        async def __aenter__(self):
            return "open"
        async def __aexit__(self, *a):
            return False
    async def work():
        async with Res() as r:
            got = await asyncio.gather(*(asyncio.sleep(0, i) for i in range(3)))
            return r, got
    result = work
    """,
    lambda f: eq(asyncio.run(f()), ("open", [0, 1, 2])),
)
C(
    "coroutine flags kept",
    """
    async def a():
        pass
    def g():
        yield
    async def ag():
        yield
    result = (a, g, ag)
    """,
    lambda t: that(
        inspect.iscoroutinefunction(t[0]) and inspect.isgeneratorfunction(t[1]) and inspect.isasyncgenfunction(t[2])
    ),
)

# --- code objects, cells, odd functions ----------------------------------------

C("code object", "result = (lambda x: x * 3).__code__", lambda c: eq(types.FunctionType(c, {})(2), 6))
C(
    "cell object",
    """
    def make():
        v = 5
        return (lambda: v).__closure__[0]
    result = make()
    """,
    lambda c: eq(c.cell_contents, 5),
)
C(
    "function built with types.FunctionType",
    """
    import types
    result = types.FunctionType((lambda a: a + G).__code__, {"G": 1}, "built")
    """,
    lambda f: eq((f(1), f.__name__), (2, "built")),
)
C(
    "function with replaced code",
    """
    def a():
        return "a"
    def b():
        return "b"
    a.__code__ = b.__code__
    result = a
    """,
    lambda f: eq(f(), "b"),
)
C(
    "function with __defaults__ set later",
    """
    def f(x, y):
        return x + y
    f.__defaults__ = (100,)
    result = f
    """,
    lambda f: eq(f(1), 101),
)
C(
    "function with __kwdefaults__ set later",
    """
    def f(*, k):
        return k
    f.__kwdefaults__ = {"k": "late"}
    result = f
    """,
    lambda f: eq(f(), "late"),
)
C(
    "function with __annotations__ forward ref",
    """
    def f(x: "Later") -> "Later":
        return x
    class Later:
        pass
    result = f
    """,
    lambda f: eq(f.__annotations__, {"x": "Later", "return": "Later"}),
)
C(
    "exec-defined function",
    """
    ns = {"K": 4}
    exec("def dyn(x):\\n    return x * K\\n", ns)
    result = ns["dyn"]
    """,
    lambda f: eq(f(2), 8),
)
C(
    "dynamic globals dict function module name",
    """
    ns = {"__name__": "made_up_module"}
    exec("def dyn():\\n    return __name__\\n", ns)
    result = ns["dyn"]
    """,
    lambda f: eq(f(), "made_up_module"),
)
C(
    "builtin function and method",
    "result = (len, [].append, 'x'.join, dict.fromkeys, object.__init__)",
    lambda t: eq((t[0]([1]), t[2](["a", "b"]), t[3]("ab")), (1, "axb", {"a": None, "b": None})),
)
C(
    "unbound method descriptors",
    "result = (str.upper, dict.__dict__['fromkeys'], int.__add__, list.append)",
    lambda t: eq((t[0]("a"), t[2](1, 2)), ("A", 3)),
)

# --- more from dill's and cloudpickle's suites -----------------------------------

C(
    "closures from one call sharing arguments (dill test_mixins)",
    """
    def wtf(x, y, z):
        def zzz():
            return x
        def yyy():
            return y
        def xxx():
            return z
        return zzz, yyy, xxx
    result = wtf(1, 2, 3)
    """,
    lambda t: eq([f() for f in t], [1, 2, 3]),
)
C(
    "closure over an imported module",
    """
    def make():
        import math as m
        return lambda: round(m.pi, 2)
    result = make()
    """,
    lambda f: eq(f(), 3.14),
)
C(
    "weakref to a function",
    """
    import weakref
    def target():
        return "alive"
    result = (target, weakref.ref(target))
    """,
    lambda t: eq(t[1]()(), "alive"),
)
C(
    "WeakKeyDictionary",
    """
    import weakref
    class Key:
        pass
    k = Key()
    result = (k, weakref.WeakKeyDictionary({k: "v"}))
    """,
    lambda t: eq(t[1][t[0]], "v"),
)
C(
    "partial of a bound method",
    """
    import functools
    class Scaler:
        def __init__(self, k):
            self.k = k
        def scale(self, x, offset=0):
            return x * self.k + offset
    result = functools.partial(Scaler(3).scale, offset=1)
    """,
    lambda f: eq(f(2), 7),
)
C(
    "map and filter objects over lambdas",
    "result = (map(lambda x: x * 2, [1, 2]), filter(lambda x: x % 2, [1, 2, 3]))",
    lambda t: eq((list(t[0]), list(t[1])), ([2, 4], [1, 3])),
)
C(
    "sorted with key lambda in function",
    """
    def by_len(words):
        return sorted(words, key=lambda w: (len(w), w))
    result = by_len
    """,
    lambda f: eq(f(["ccc", "a", "bb"]), ["a", "bb", "ccc"]),
)
C(
    "async function with functools.wraps",
    """
    import functools
    def traced(fn):
        @functools.wraps(fn)
        async def inner(*a):
            return ("traced", await fn(*a))
        return inner
    @traced
    async def fetch(x):
        return x
    result = fetch
    """,
    lambda f: eq((__import__("asyncio").run(f(1)), f.__name__), (("traced", 1), "fetch")),
)
C(
    "function with typing.Annotated annotation",
    """
    import typing
    def f(x: typing.Annotated[int, "meters"]) -> None:
        return None
    result = f
    """,
    lambda f: eq(f.__annotations__["x"].__metadata__, ("meters",)),
)
C(
    "lambda default is a local class instance",
    """
    class Unit:
        name = "m"
    result = lambda u=Unit(): u.name
    """,
    lambda f: eq(f(), "m"),
)
C(
    "itertools.islice and accumulate",
    "import itertools\nresult = (itertools.islice(range(10), 2, 5), itertools.accumulate([1, 2, 3]))",
    lambda t: eq((list(t[0]), list(t[1])), ([2, 3, 4], [1, 3, 6])),
)
