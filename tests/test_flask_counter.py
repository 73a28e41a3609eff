"""The seed scenario: a Flask app whose state survives requests and restarts
(`examples/flask_counter.py`), driven with Flask's test client, in one
process and across two."""

import os
import sys

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)
import flask_counter  # noqa: E402  (the example, as users run it)

import _subproc  # noqa: E402


def test_state_survives_requests_and_a_restart(tmp_path):
    path = str(tmp_path / "state.pkl")
    client = flask_counter.create_app(path).test_client()
    for expected in (1, 2, 3):
        assert client.post("/hit").get_json()["count"] == expected
    restarted = flask_counter.create_app(path).test_client()
    state = restarted.get("/state").get_json()
    assert state["count"] == 3 and state["visitor"] == "returning-3"
    assert state["user_agent"] == "flask-counter/1.0"
    assert restarted.post("/hit").get_json()["count"] == 4


SERVE = """
import sys
sys.path.insert(0, {examples!r})
import flask_counter
client = flask_counter.create_app({path!r}).test_client()
for _ in range({hits}):
    reply = client.post("/hit").get_json()
print(reply["count"], reply["visitor"], reply["last_hit"] is not None)
"""


def test_state_survives_across_processes(tmp_path):
    path = str(tmp_path / "state.pkl")

    def serve(hits):
        return _subproc.code(SERVE.format(examples=EXAMPLES, path=path, hits=hits)).stdout.decode().split()

    assert serve(2) == ["2", "returning-2", "True"]
    assert serve(3) == ["5", "returning-5", "True"]
    assert os.stat(path).st_mode & 0o777 == 0o600
