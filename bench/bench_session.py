"""Session benchmark: a module of 1,000 mixed variables saved and restored
with turbodill's ``dump_module``/``load_module`` and dill's, in the same run.

    python bench/bench_session.py [--rounds N] [--json PATH]

The namespace holds 350 data values (ints, floats, strings, lists, dicts,
tuples, sets), 150 functions that call each other and read globals, 50
lambdas, 50 closures, 50 classes with methods, 250 instances of them and 100
references to imported modules. It is a module built at run time (so both
libraries save its functions and classes by value, as they do for
``__main__``) and both write to an in-memory file, so the timings are of the
serialization, not of the disk (turbodill's path-based writes also fsync).
Rounds alternate the libraries in a shuffled order; tables report medians.

dill pickles the functions of a session by recursing through their globals,
so its Python recursion depth grows with the number of functions that refer
to one another: this namespace needs more than the default limit of 1,000
(RecursionError), and the benchmark raises it for dill's sake.
"""

import argparse
import io
import json
import random
import statistics
import sys
import types

import dill

import turbodill
from bench import fmt_time, markdown_table, time_loops

MODULES = ["json", "os", "re", "math", "random", "collections", "itertools", "functools", "string", "textwrap"]


def build_namespace():
    lines = [f"import {', '.join(MODULES)}"]
    for i in range(350):
        kind = i % 7
        value = [
            f"{i}",
            f"{i}.5",
            f"'value number {i}'",
            f"list(range({i % 20}))",
            f"{{'key': {i}, 'name': 'n{i}', 'tags': ['a', 'b']}}",
            f"({i}, 'x', None)",
            f"{{{i}, {i + 1}}}",
        ][kind]
        lines.append(f"data_{i} = {value}")
    lines.append("def func_0(x):\n    return x + data_0")
    for i in range(1, 150):
        lines.append(
            f"def func_{i}(x):\n    return func_{i // 2}(x) + data_{i % 350} if isinstance(data_{i % 350}, int) else x"
        )
    for i in range(50):
        lines.append(f"lambda_{i} = lambda x: x * {i} + data_{i * 7}")
    lines.append("def make_closure(k):\n    def inner(x):\n        return x + k\n    return inner")
    for i in range(50):
        lines.append(f"closure_{i} = make_closure({i})")
    for i in range(50):
        lines.append(
            f"class Class_{i}:\n"
            f"    scale = {i}\n"
            f"    def __init__(self, v):\n        self.v = v\n        self.label = 'c{i}'\n"
            f"    def scaled(self):\n        return self.v * self.scale"
        )
    for i in range(250):
        lines.append(f"instance_{i} = Class_{i % 50}({i})")
    for i in range(100 - len(MODULES)):
        lines.append(f"module_{i} = {MODULES[i % len(MODULES)]}")
    module = types.ModuleType("bench_session")
    exec("\n".join(lines), module.__dict__)
    del module.__dict__["__builtins__"]  # neither library saves it; keep the count at 1,000 + make_closure
    return module


def dumper(lib):
    """`lib.dump_module` of a module into an in-memory file, as bytes."""

    def dump(module):
        buffer = io.BytesIO()
        lib.dump_module(buffer, module=module)
        return buffer.getvalue()

    return dump


def loader(lib):
    return lambda data: lib.load_module(io.BytesIO(data))


def check(loaded):
    assert loaded.func_147(1) == loaded.func_73(1) + loaded.data_147
    assert loaded.lambda_3(2) == 6 + loaded.data_21
    assert loaded.closure_7(1) == 8
    assert isinstance(loaded.instance_3, loaded.Class_3) and loaded.instance_3.scaled() == 9
    assert loaded.module_0 is sys.modules["json"]


def main(argv=None):
    sys.setrecursionlimit(100_000)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    module = build_namespace()
    names = [n for n in vars(module) if not n.startswith("__")]
    print(f"namespace: {len(names)} variables")
    libraries = {lib.__name__: (dumper(lib), loader(lib)) for lib in (turbodill, dill)}
    payloads = {name: dump(module) for name, (dump, _) in libraries.items()}
    for name, (_, load) in libraries.items():
        check(load(payloads[name]))
    samples = {(name, op): [] for name in libraries for op in ("dump", "load")}
    rng = random.Random(1234)
    for _ in range(args.rounds):
        tasks = [(name, op) for name in libraries for op in ("dump", "load")]
        rng.shuffle(tasks)
        for name, op in tasks:
            dump, load = libraries[name]
            fn = (lambda: dump(module)) if op == "dump" else (lambda: load(payloads[name]))
            loops = 1 if name == "dill" else 5
            samples[name, op].append(time_loops(fn, loops))
    medians = {key: statistics.median(values) for key, values in samples.items()}
    rows = [
        [
            op,
            fmt_time(medians["turbodill", op]),
            fmt_time(medians["dill", op]),
            f"{medians['dill', op] / medians['turbodill', op]:.1f}x",
        ]
        for op in ("dump", "load")
    ]
    rows.append(["size", f"{len(payloads['turbodill'])} B", f"{len(payloads['dill'])} B", ""])
    print(markdown_table(["1,000-variable session", "turbodill", "dill", "turbodill faster by"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{lib} {op}": value for (lib, op), value in medians.items()}, f, indent=2)


if __name__ == "__main__":
    main()
