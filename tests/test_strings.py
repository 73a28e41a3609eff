"""Strings, byte for byte against the C pickler: every storage kind, lone
surrogates, sizes around the frame and SHORT_BINUNICODE limits, shared and
unshared (a str only its list refers to skips the memo table), to bytes and
to a file."""

import io
import pickle

import pytest

import turbodill

SAMPLES = [
    "",
    "ascii",
    "é latin-1 ÿ",
    "€ BMP \u4e2d",
    "astral \U0001f600 \U0010ffff",
    "lone \udc80 surrogate \ud800",
    "x" * 255,
    "x" * 256,
    "é" * 200,
    "y" * 70_000,
    "€" * 30_000,
]


def distinct_strings():
    """A list whose items only it refers to (made fresh, one per slot)."""
    return ["".join([s, str(i)]) for i, s in enumerate(SAMPLES * 3)]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_unshared_strings_match_pickle(protocol):
    data = distinct_strings()
    assert turbodill.dumps(data, protocol=protocol) == pickle.dumps(data, protocol=protocol)
    assert pickle.loads(turbodill.dumps(data, protocol=protocol)) == data


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_shared_strings_are_memoized(protocol):
    shared = "".join(["shared ", "é"])
    data = [shared, "".join(["a", "b"]), shared, [shared], {shared: shared}]
    out = turbodill.dumps(data, protocol=protocol)
    assert out == pickle.dumps(data, protocol=protocol)
    loaded = pickle.loads(out)
    assert loaded[0] is loaded[2] is loaded[3][0]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unshared_strings_to_a_file_match_pickle(protocol):
    data = distinct_strings() * 50  # several frames, flushed as they fill
    ours, theirs = io.BytesIO(), io.BytesIO()
    turbodill.dump(data, ours, protocol=protocol)
    pickle.dump(data, theirs, protocol=protocol)
    assert ours.getvalue() == theirs.getvalue()


def test_a_file_write_that_takes_the_string_keeps_it_memoized():
    """`write` runs Python code between two items: when it takes a reference
    to the next string, that string is memoized as usual."""
    data = ["".join(["item", str(i)]) for i in range(20_000)]
    kept = []

    class Grabbing(io.BytesIO):
        def write(self, b):
            kept.extend(data)
            return super().write(b)

    out = Grabbing()
    turbodill.dump(data, out, protocol=4)
    assert pickle.loads(out.getvalue()) == data


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_unshared_strings_in_tuples_and_dicts_match_pickle(protocol):
    keys, values = distinct_strings(), distinct_strings()
    shared = "".join(["shared", "é"])
    data = [
        tuple(distinct_strings()),
        [(i, "".join(["x", str(i)])) for i in range(300)],
        dict(zip(keys, values)),
        {"".join(["k", str(i)]): shared for i in range(5)},
        {shared: "".join(["v", "é"]), "".join(["k", "é"]): [shared]},
    ]
    out = turbodill.dumps(data, protocol=protocol)
    assert out == pickle.dumps(data, protocol=protocol)
    assert pickle.loads(out) == data
