"""Objects: modules, workers, the stdlib's long tail, and the libraries people
ship (Flask, requests, redis-py, numpy, pandas)."""

import operator

from case import C, eq, raises, that


def with_request_context(view):
    import flask

    with flask.Flask("parity_check").test_request_context():
        return view()


# --- modules -------------------------------------------------------------------

C("stdlib module", "import math\nresult = math", lambda m: eq(m.sqrt(9), 3.0))
C("stdlib submodule", "import os.path\nresult = os.path", lambda m: eq(m.join("a", "b"), "a/b"))
C(
    "function using a module global by attribute",
    "import os\nresult = lambda: os.sep",
    lambda f: eq(f(), "/"),
)
C(
    "dynamic module",
    """
    import types
    mod = types.ModuleType("dynmod")
    mod.VALUE = 3
    exec("def get():\\n    return VALUE * 2\\n", mod.__dict__)
    result = mod
    """,
    lambda m: eq((m.get(), m.VALUE, m.__name__), (6, 3, "dynmod")),
)
C(
    "function from a dynamic module",
    """
    import types
    mod = types.ModuleType("dynmod2")
    exec("K = 5\\ndef get():\\n    return K\\n", mod.__dict__)
    result = mod.get
    """,
    lambda f: eq(f(), 5),
)
C(
    "dynamic module needing __builtins__",
    """
    import types
    mod = types.ModuleType("dynmod3")
    exec("import datetime\\ndef year():\\n    return datetime.datetime.strptime('2001', '%Y').year\\n", mod.__dict__)
    result = mod
    """,
    lambda m: eq(m.year(), 2001),
    defect=2,
)
C(
    "dynamic module identity within payload",
    """
    import types
    mod = types.ModuleType("dynmod4")
    mod.x = 1
    result = [mod, mod]
    """,
    lambda t: that(t[0] is t[1]),
)
C(
    "the defining module itself",
    "import sys\nresult = sys.modules[__name__]",
    lambda m: eq(m.helper(), "defining module"),
    top="MARK = 'defining module'\ndef helper():\n    return MARK",
)
C(
    "relative import inside function",
    """
    def uses_relative():
        from .parity_rel_helper import answer
        return answer()
    result = uses_relative
    """,
    lambda f: eq(f(), 42),
    files={"parity_rel_helper.py": "def answer():\n    return 42\n"},
    defect=3,
)
C(
    "relative import at module level",
    """
    from .parity_rel_helper2 import triple
    result = lambda x: triple(x) + 1
    """,
    lambda f: eq(f(2), 7),
    files={"parity_rel_helper2.py": "def triple(x):\n    return 3 * x\n"},
)
C(
    "function __package__ and __name__ kept",
    """
    def where():
        return (__name__, __package__)
    result = (where, (__name__, __package__))
    """,
    lambda t: eq(t[0](), t[1]),
    defect=3,
)

# --- workers -------------------------------------------------------------------

C(
    "stateless worker: bound method sent twice",
    """
    class Worker:
        def run(self):
            global CALLS
            CALLS += 1
            return CALLS
    w = Worker()
    result = (w.run, w.run)
    """,
    lambda a, b: eq((a(), b()), (1, 1)),
    top="CALLS = 0",
    payloads=2,
    defect=12,
)
C(
    "stateless worker: function sent twice",
    """
    def task():
        global SEEN
        SEEN.append(1)
        return len(SEEN)
    result = (task, task)
    """,
    lambda a, b: eq((a(), a(), b()), (1, 2, 1)),
    top="SEEN = []",
    payloads=2,
)
C(
    "worker task with class instance argument",
    """
    class Job:
        def __init__(self, n):
            self.n = n
    def run(job):
        return job.n * 2
    result = (run, Job(21))
    """,
    lambda f, job: eq(f(job), 42),
    payloads=2,
)
C(
    "map of partials over a lambda",
    """
    import functools
    work = lambda base, x: base + x
    result = [functools.partial(work, 10)] * 3
    """,
    lambda fs: eq([f(i) for i, f in enumerate(fs)], [10, 11, 12]),
)

# --- stdlib objects ------------------------------------------------------------

C(
    "collections containers",
    """
    import collections
    result = (collections.OrderedDict(a=1), collections.Counter("aab"), collections.deque([1, 2], maxlen=3),
              collections.ChainMap({"a": 1}, {"b": 2}))
    """,
    lambda t: eq((list(t[0].items()), t[1]["a"], t[2].maxlen, t[3]["b"]), ([("a", 1)], 2, 3, 2)),
)
C(
    "defaultdict with lambda factory",
    """
    import collections
    d = collections.defaultdict(lambda: "missing")
    d["x"] = 1
    result = d
    """,
    lambda d: eq((d["x"], d["y"]), (1, "missing")),
)
C(
    "defaultdict with local class factory",
    """
    import collections
    class Acc:
        def __init__(self):
            self.items = []
    result = collections.defaultdict(Acc)
    """,
    lambda d: eq(d["k"].items, []),
)
C("dict keys view", "result = {'a': 1, 'b': 2}.keys()", lambda v: eq(sorted(v), ["a", "b"]))
C("dict values view", "result = {'a': 1, 'b': 2}.values()", lambda v: eq(sorted(v), [1, 2]))
C("dict items view", "result = {'a': 1}.items()", lambda v: eq(list(v), [("a", 1)]))
C(
    "OrderedDict views",
    "import collections\no = collections.OrderedDict(a=1)\nresult = (o.keys(), o.values(), o.items())",
    lambda t: eq((list(t[0]), list(t[1]), list(t[2])), (["a"], [1], [("a", 1)])),
)
C(
    "mappingproxy",
    "import types\nresult = types.MappingProxyType({'k': 'v'})",
    lambda m: eq(m["k"], "v") and raises(TypeError, operator.setitem, m, "k", 1),
)
C("memoryview", "result = memoryview(b'abcdef')[1:4]", lambda m: eq(bytes(m), b"bcd"))
C("itertools.count", "import itertools\nc = itertools.count(5, 2)\nnext(c)\nresult = c", lambda c: eq(next(c), 7))
C("itertools objects", "import itertools\nresult = list(itertools.chain([1], [2]))", lambda v: eq(v, [1, 2]))
C(
    "range and slice",
    "result = (range(1, 10, 3), slice(1, None, 2))",
    lambda t: eq((list(t[0]), [0, 1, 2, 3][t[1]]), ([1, 4, 7], [1, 3])),
)
C(
    "singletons and their types",
    "result = (Ellipsis, NotImplemented, None, type(None), type(Ellipsis), type(NotImplemented))",
    lambda t: that(t[0] is ... and t[1] is NotImplemented and t[3] is type(None) and t[4] is type(...)),
)
C(
    "regular expression",
    "import re\nresult = re.compile(r'(\\d+)-(\\w+)', re.I)",
    lambda r: eq(r.match("12-ab").groups(), ("12", "ab")),
)
C(
    "decimal, fraction, complex",
    "import decimal, fractions\nresult = (decimal.Decimal('1.10'), fractions.Fraction(1, 3), 2 + 3j)",
    lambda t: eq((str(t[0]), t[1] * 3, t[2].imag), ("1.10", 1, 3.0)),
)
C(
    "datetime with timezone",
    "import datetime\nresult = datetime.datetime(2020, 1, 2, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))",
    lambda d: eq((d.utcoffset().seconds, d.year), (7200, 2020)),
)
C(
    "uuid and pathlib",
    "import uuid, pathlib\nresult = (uuid.UUID(int=5), pathlib.PurePosixPath('/a/b'))",
    lambda t: eq((t[0].int, t[1].name), (5, "b")),
)
C(
    "array.array",
    "import array\nresult = array.array('i', [1, 2, 3])",
    lambda a: eq((a.typecode, list(a)), ("i", [1, 2, 3])),
)
C(
    "bytearray and frozenset",
    "result = (bytearray(b'xy'), frozenset({1, 2}))",
    lambda t: eq(t, (bytearray(b"xy"), frozenset({1, 2}))),
)
C("io.StringIO", "import io\ns = io.StringIO('hello')\ns.read(2)\nresult = s", lambda s: eq(s.read(), "llo"))
C("io.BytesIO", "import io\nb = io.BytesIO(b'hello')\nb.seek(1)\nresult = b", lambda b: eq(b.read(), b"ello"))
C(
    "threading.Lock",
    "import threading\nresult = threading.Lock()",
    lambda lk: that(lk.acquire(blocking=False) and (lk.release() is None)),
)
C(
    "threading.Lock held",
    "import threading\nlk = threading.Lock()\nlk.acquire()\nresult = lk",
    lambda lk: that(lk.locked()),
)
C(
    "threading.RLock",
    "import threading\nresult = threading.RLock()",
    lambda lk: that(lk.acquire(blocking=False) and lk.acquire(blocking=False)),
)
C(
    "class instance holding a lock",
    """
    import threading
    class Counter:
        def __init__(self):
            self.lock = threading.Lock()
            self.n = 0
        def incr(self):
            with self.lock:
                self.n += 1
                return self.n
    result = Counter()
    """,
    lambda c: eq((c.incr(), c.incr()), (1, 2)),
)
C("threading.Event", "import threading\ne = threading.Event()\ne.set()\nresult = e", lambda e: that(e.is_set()))
C(
    "logging.Logger",
    "import logging\nresult = logging.getLogger('parity.logger')",
    lambda lg: eq(lg.name, "parity.logger"),
)
C("root logger", "import logging\nresult = logging.getLogger()", lambda lg: eq(lg.name, "root"))
C(
    "weakref to a long-lived object",
    """
    import weakref
    class Target:
        pass
    t = Target()
    result = (t, weakref.ref(t))
    """,
    lambda t: that(t[1]() is t[0]),
)
C(
    "WeakSet",
    """
    import weakref
    class Item:
        pass
    items = [Item(), Item()]
    ws = weakref.WeakSet(items)
    result = (items, ws)
    """,
    lambda t: eq(len(t[1]), 2) and that(t[0][0] in t[1]),
)
C(
    "WeakValueDictionary",
    """
    import weakref
    class Item:
        pass
    keep = Item()
    result = (keep, weakref.WeakValueDictionary({"k": keep}))
    """,
    lambda t: that(t[1]["k"] is t[0]),
)
C(
    "weakref.proxy",
    """
    import weakref
    class Target:
        v = 7
    t = Target()
    result = (t, weakref.proxy(t))
    """,
    lambda t: eq(t[1].v, 7),
)
C(
    "file opened for reading",
    """
    import os, tempfile
    path = os.path.join(tempfile.gettempdir(), "parity-read.txt")
    with open(path, "w") as f:
        f.write("line1\\nline2\\n")
    fh = open(path)
    fh.readline()
    result = fh
    """,
    lambda f: eq(f.read(), "line2\n"),
)
C(
    "file opened for writing",
    """
    import os, tempfile
    path = os.path.join(tempfile.gettempdir(), "parity-write.txt")
    result = open(path, "w")
    """,
    lambda f: eq((f.mode, f.writable()), ("w", True)),
    defect=11,
)
C(
    "file opened in append mode",
    """
    import os, tempfile
    path = os.path.join(tempfile.gettempdir(), "parity-append.txt")
    result = open(path, "a")
    """,
    lambda f: eq((f.mode, f.writable()), ("a", True)),
    defect=11,
)
C(
    "binary file opened for reading",
    """
    import os, tempfile
    path = os.path.join(tempfile.gettempdir(), "parity-bin.dat")
    with open(path, "wb") as f:
        f.write(b"\\x00\\x01\\x02")
    result = open(path, "rb")
    """,
    lambda f: eq(f.read(), b"\x00\x01\x02"),
)
C(
    "closed file",
    """
    import os, tempfile
    path = os.path.join(tempfile.gettempdir(), "parity-closed.txt")
    f = open(path, "w")
    f.close()
    result = f
    """,
    lambda f: that(f.closed),
)
C("sys.stdout", "import sys\nresult = sys.stdout", lambda s: that(s is __import__("sys").stdout))
C(
    "contextvars.ContextVar",
    "import contextvars\nresult = contextvars.ContextVar('parity_var', default=3)",
    lambda v: eq((v.name, v.get()), ("parity_var", 3)),
)
C(
    "super object",
    """
    class A:
        def f(self):
            return "A.f"
    class B(A):
        pass
    result = super(B, B())
    """,
    lambda s: eq(s.f(), "A.f"),
)
C(
    "property object alone",
    """
    def getter(self):
        return 1
    result = property(getter, doc="prop doc")
    """,
    lambda p: eq((p.fget(None), p.__doc__), (1, "prop doc")),
)
C(
    "queue.Queue",
    "import queue\nq = queue.Queue()\nq.put(1)\nresult = q",
    lambda q: eq(q.get_nowait(), 1),
)
C(
    "traceback of a raised exception",
    """
    def fail():
        raise RuntimeError("tb")
    try:
        fail()
    except RuntimeError as e:
        result = e
    """,
    lambda e: eq(e.args, ("tb",)),
)
C(
    "nested containers with shared references",
    """
    shared = [1]
    result = {"a": shared, "b": (shared, [shared])}
    """,
    lambda d: that(d["a"] is d["b"][0] is d["b"][1][0]),
)
C(
    "recursive list and dict",
    """
    lst = []
    lst.append(lst)
    d = {}
    d["self"] = d
    result = (lst, d)
    """,
    lambda t: that(t[0][0] is t[0] and t[1]["self"] is t[1]),
)
C(
    "deeply nested list",
    """
    deep = []
    for _ in range(5000):
        deep = [deep]
    result = deep
    """,
    lambda d: that(isinstance(d[0][0][0], list)),
)

# --- libraries -------------------------------------------------------------------

C(
    "Flask app with routes serves a request",
    """
    import flask
    app = flask.Flask("parity_app")
    @app.route("/hello/<name>")
    def hello(name):
        return "hello " + name
    @app.route("/json")
    def as_json():
        return flask.jsonify(ok=True)
    result = app
    """,
    lambda app: eq(
        (app.test_client().get("/hello/ann").data, app.test_client().get("/json").json), (b"hello ann", {"ok": True})
    ),
    needs=("flask",),
    defect=9,
)
C(
    "Flask view function",
    """
    import flask
    def index():
        return flask.jsonify(value=3)
    result = index
    """,
    lambda f: eq(with_request_context(f).json, {"value": 3}),
    needs=("flask",),
)
C(
    "werkzeug Rule and Map",
    """
    from werkzeug.routing import Map, Rule
    m = Map([Rule("/item/<int:id>", endpoint="item")])
    m.bind("example.org").match("/item/3")
    result = m
    """,
    lambda m: eq(m.bind("example.org").match("/item/3"), ("item", {"id": 3})),
    needs=("werkzeug",),
    defect=9,
)
C(
    "requests Session",
    """
    import requests
    s = requests.Session()
    s.headers["X-Parity"] = "1"
    s.params = {"q": "x"}
    result = s
    """,
    lambda s: eq(
        (s.headers["X-Parity"], s.params, type(s.get_adapter("https://example.org")).__name__),
        ("1", {"q": "x"}, "HTTPAdapter"),
    ),
    needs=("requests",),
)
C(
    "requests Session subclass with hook",
    """
    import requests
    class ApiSession(requests.Session):
        __attrs__ = requests.Session.__attrs__ + ["base"]
        def __init__(self, base):
            super().__init__()
            self.base = base
        def url(self, path):
            return self.base + path
    s = ApiSession("http://api")
    s.hooks["response"].append(lambda r, *a, **k: r)
    result = s
    """,
    lambda s: eq((s.url("/x"), len(s.hooks["response"])), ("http://api/x", 1)),
    needs=("requests",),
)
C(
    "requests PreparedRequest",
    """
    import requests
    result = requests.Request("POST", "http://example.org/p", json={"a": 1}).prepare()
    """,
    lambda r: eq((r.method, r.url, r.body), ("POST", "http://example.org/p", b'{"a": 1}')),
    needs=("requests",),
)
C(
    "redis client object (not connected)",
    """
    import redis
    result = redis.Redis(host="localhost", port=6390, db=2, socket_timeout=1)
    """,
    lambda r: eq((r.connection_pool.connection_kwargs["port"], r.connection_pool.connection_kwargs["db"]), (6390, 2)),
    needs=("redis",),
)
C(
    "redis client in a wrapper class",
    """
    import redis
    class Cache:
        def __init__(self):
            self.client = redis.Redis(port=6391)
        def key(self, k):
            return "cache:" + k
    result = Cache()
    """,
    lambda c: eq((c.key("a"), c.client.connection_pool.connection_kwargs["port"]), ("cache:a", 6391)),
    needs=("redis",),
)
C(
    "numpy array",
    "import numpy as np\nresult = np.arange(6).reshape(2, 3)",
    lambda a: eq(a.sum(axis=0).tolist(), [3, 5, 7]),
    needs=("numpy",),
)
C(
    "numpy lambda calling sum (lazy import needs __builtins__)",
    "import numpy as np\nresult = (lambda a: a.sum(), np.arange(4))",
    lambda f, a: eq(int(f(a)), 6),
    needs=("numpy",),
    payloads=2,
)
C(
    "numpy function closure",
    """
    import numpy as np
    def make(scale):
        return lambda x: np.multiply(x, scale)
    result = make(np.float64(2.5))
    """,
    lambda f: eq(f(2).item(), 5.0),
    needs=("numpy",),
)
C(
    "numpy structured array and dtype",
    """
    import numpy as np
    dt = np.dtype([("name", "U5"), ("v", "f8")])
    result = (np.array([("a", 1.0)], dtype=dt), dt)
    """,
    lambda t: eq((t[0]["name"][0], t[1].names), ("a", ("name", "v"))),
    needs=("numpy",),
)
C(
    "numpy ufunc and scalar types",
    "import numpy as np\nresult = (np.add, np.float32(1.5), np.int64)",
    lambda t: eq((t[0](1, 2), float(t[1]), t[2].__name__), (3, 1.5, "int64")),
    needs=("numpy",),
)
C(
    "numpy random Generator",
    "import numpy as np\nresult = np.random.default_rng(42)",
    lambda g: eq(len(g.integers(0, 10, size=3)), 3),
    needs=("numpy",),
)
C(
    "numpy ndarray subclass",
    """
    import numpy as np
    class Tagged(np.ndarray):
        def tag(self):
            return "tagged"
    result = np.arange(3).view(Tagged)
    """,
    lambda a: eq((a.tag(), a.tolist()), ("tagged", [0, 1, 2])),
    needs=("numpy",),
)
C(
    "numpy vectorize of lambda",
    "import numpy as np\nresult = np.vectorize(lambda v: v + 1)",
    lambda f: eq(f([1, 2]).tolist(), [2, 3]),
    needs=("numpy",),
)
C(
    "pandas DataFrame",
    "import pandas as pd\nresult = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})",
    lambda df: eq((df["a"].sum(), list(df.columns)), (3, ["a", "b"])),
    needs=("pandas",),
)
C(
    "pandas apply with lambda",
    "import pandas as pd\nresult = (pd.Series([1, 2, 3]), lambda s: s.apply(lambda v: v * 2).tolist())",
    lambda s, f: eq(f(s), [2, 4, 6]),
    needs=("pandas",),
    payloads=2,
)
C(
    "attrs class",
    """
    import attr
    @attr.s(auto_attribs=True)
    class Pt:
        x: int
        y: int = 0
    result = Pt(1)
    """,
    lambda p: eq((p.x, p.y, repr(p)), (1, 0, "Pt(x=1, y=0)")),
    needs=("attr",),
)
C(
    "attrs frozen slots define",
    """
    import attrs
    @attrs.frozen
    class Money:
        amount: int
        currency: str = "EUR"
    result = Money(5)
    """,
    lambda m: eq((m.amount, m.currency), (5, "EUR")) and raises(Exception, setattr, m, "amount", 1),
    needs=("attrs",),
)
