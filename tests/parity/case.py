"""A parity case: code that defines `result` (what gets pickled) and a check
that the loaded object behaves like the original."""

import importlib.util
import textwrap

CASES = []


class Case:
    def __init__(
        self, name, body, check, *, top="", payloads=1, deferred=False, needs=(), differs=None, defect=None, files=None
    ):
        self.name = name
        self.body = textwrap.dedent(body).strip("\n")
        self.top = textwrap.dedent(top).strip("\n")
        self.check = check
        self.payloads = payloads  # >1: `result` is a tuple, each item its own payload
        self.deferred = deferred  # each payload is made by calling its item, just before its dump
        self.needs = needs  # optional packages the case imports
        self.differs = differs or {}  # peer -> why turbodill deliberately differs from it, one line
        self.defect = defect  # issue 9's defect number when the case reproduces one
        self.files = files or {}  # extra modules of the site's package (relative imports)

    def available(self):
        return all(importlib.util.find_spec(name) is not None for name in self.needs)

    def run_check(self, objects):
        outcome = self.check(*objects)
        if outcome is not None and not outcome:
            raise AssertionError("check returned a false value")


def C(name, body, check, **kwargs):
    if any(case.name == name for case in CASES):
        raise ValueError(f"two cases named {name}")
    CASES.append(Case(name, body, check, **kwargs))


def eq(actual, expected):
    if actual != expected:
        raise AssertionError(f"{actual!r} != {expected!r}")
    return True


def raises(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type:
        return True
    raise AssertionError(f"{fn!r} did not raise {exc_type.__name__}")


def that(condition, message="condition false"):
    if not condition:
        raise AssertionError(message)
    return True
