"""The parity corpus's two worker processes.

`dump LIB SITE WORKDIR OUT`: defines every case at SITE and pickles it with LIB
at each protocol, one record per case appended to OUT as it goes (so a crash
loses only the case in progress). `load LIB SITE PROTO WORKDIR DUMPS OUT`: a
fresh interpreter, where no defining module is importable for sites "main" and
"byvalue", loads each case's payloads with plain `pickle.loads` and runs the
case's check, writing one JSON line per case.

Sites: "main" runs the case's code in `__main__`; "local" in a function of the
importable module `parity_local.c_NNN` (importable at load too, as on a worker
running the same code); "byvalue" at the top of `parity_byval.c_NNN`,
registered with `register_pickle_by_value` (dill has no such registry: its
"byvalue" runs with the module importable at load).
"""

import json
import os
import pickle
import signal
import sys
import textwrap

PROTOCOLS = (2, 3, 4, 5)
SITES = ("main", "local", "byvalue")
LIBRARIES = ("turbodill", "cloudpickle", "dill")
CASE_TIMEOUT = 2  # seconds a check may take before it counts as failed
PACKAGES = {"local": "parity_local", "byvalue": "parity_byval"}


def module_name(site, index):
    return f"{PACKAGES[site]}.c_{index:03d}"


def write_site_packages(workdir, cases):
    """One module per case and site: `top` at module level, `body` in a
    function (local) or at module level (byvalue)."""
    for site in ("local", "byvalue"):
        package = os.path.join(workdir, site, PACKAGES[site])
        os.makedirs(package, exist_ok=True)
        with open(os.path.join(package, "__init__.py"), "w") as f:
            f.write("")
        for index, case in enumerate(cases):
            if site == "local":
                text = f"{case.top}\n\ndef _parity_build():\n{textwrap.indent(case.body, '    ')}\n    return result\n"
            else:
                text = f"{case.top}\n{case.body}\n"
            for name, source in case.files.items():
                with open(os.path.join(package, name), "w") as f:
                    f.write(source)
            with open(os.path.join(package, f"c_{index:03d}.py"), "w") as f:
                f.write(text)


def pickler(lib):
    if lib == "turbodill":
        import turbodill

        return turbodill.dumps
    if lib == "cloudpickle":
        import cloudpickle

        return cloudpickle.dumps
    import dill

    # recurse=True: a __main__ function's globals by value. With the default a
    # __main__ function names `__builtin__.__main__`, which only dill's own
    # Unpickler resolves, so plain pickle.loads could load none of them.
    return lambda obj, protocol: dill.dumps(obj, protocol=protocol, recurse=True)


def build(site, index, case):
    """The case's result, defined at `site`."""
    if site == "main":
        # A fresh __main__ namespace per case: names left by earlier cases
        # would otherwise leak into later ones.
        namespace = sys.modules["__main__"].__dict__
        for name in set(namespace) - MAIN_NAMES:
            del namespace[name]
        for part in (case.top, case.body):
            exec(compile(part, f"<parity {case.name}>", "exec"), namespace)
        return namespace.pop("result")
    module = __import__(module_name(site, index), fromlist=["_"])
    return module._parity_build() if site == "local" else module.result


def error_text(exc):
    return f"{type(exc).__name__}: {exc}"[:300]


def dump(lib, site, workdir, out, start):
    import cases as corpus

    for site_name in ("local", "byvalue"):
        sys.path.insert(0, os.path.join(workdir, site_name))
    dumps = pickler(lib)
    global MAIN_NAMES
    MAIN_NAMES = set(sys.modules["__main__"].__dict__)
    if site == "byvalue" and lib != "dill":
        package = __import__(PACKAGES[site])
        registry = __import__(lib)
        registry.register_pickle_by_value(package)
    with open(out, "ab") as f:
        for index, case in enumerate(corpus.CASES):
            if index < start or not case.available():
                continue
            pickle.dump(("start", index), f)
            f.flush()
            record = {}
            try:
                result = build(site, index, case)
                objects = result if case.payloads > 1 else (result,)
                for protocol in PROTOCOLS:
                    try:
                        record[protocol] = [
                            dumps(obj() if case.deferred else obj, protocol=protocol) for obj in objects
                        ]
                    except BaseException as exc:
                        record[protocol] = "dumps: " + error_text(exc)
            except BaseException as exc:
                record = {protocol: "define: " + error_text(exc) for protocol in PROTOCOLS}
            pickle.dump(("done", index, record), f)
            f.flush()


def read_records(path):
    """The records of a dump file, and the index of a case that started but
    never finished (the dumper died on it), or None."""
    records, started = {}, None
    with open(path, "rb") as f:
        while True:
            try:
                entry = pickle.load(f)
            except (EOFError, pickle.UnpicklingError):
                break
            if entry[0] == "start":
                started = entry[1]
            else:
                records[entry[1]] = entry[2]
                started = None
    return records, started


def on_timeout(signum, frame):
    raise TimeoutError(f"check took more than {CASE_TIMEOUT} s")


def load(lib, site, protocol, workdir, dumps_path, out, skip):
    import cases as corpus

    if site == "local" or (site == "byvalue" and lib == "dill"):
        sys.path.insert(0, os.path.join(workdir, site))
    records, _ = read_records(dumps_path)
    signal.signal(signal.SIGALRM, on_timeout)
    with open(out, "a") as f:
        for index in sorted(records):
            if index in skip:
                continue
            f.write(json.dumps({"start": index}) + "\n")
            f.flush()
            payloads = records[index][protocol]
            if isinstance(payloads, str):
                outcome = payloads
            else:
                signal.alarm(CASE_TIMEOUT)
                try:
                    objects = [pickle.loads(data) for data in payloads]
                    try:
                        corpus.CASES[index].run_check(objects)
                        outcome = "pass"
                    except BaseException as exc:
                        outcome = "check: " + error_text(exc)
                except BaseException as exc:
                    outcome = "loads: " + error_text(exc)
                finally:
                    signal.alarm(0)
            f.write(json.dumps({"index": index, "outcome": outcome}) + "\n")
            f.flush()


if __name__ == "__main__":
    raise SystemExit("run through report.py")
