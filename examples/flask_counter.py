"""A Flask app that keeps state across requests and across restarts.

    pip install flask requests . && python examples/flask_counter.py [STATE_FILE]
    curl -X POST localhost:5000/hit ; curl localhost:5000/state

The usual first try, `dump_session()` / `load_session()` inside a view,
fails with UnboundLocalError: `load_session` restores *module* globals, while
the view's `count = count + 1` makes `count` a local of the function. State
that must outlive a request belongs in an object of its own. Here it is a
dedicated module, `state`, saved whole with `turbodill.dump_module` after each
change (an atomic replace of a private file, so a crash mid-write keeps the
previous state) and restored with `turbodill.load_module` when the app starts.
A lock makes each read-modify-save step atomic for threaded servers.
"""

import os
import sys
import threading
import time
import types

import flask
import requests

import turbodill


def new_state():
    """The state of a first start: a counter, when it last changed, and a
    client object with its own configuration (headers, cookies)."""
    state = types.ModuleType("counter_state")
    state.count = 0
    state.last_hit = None
    state.client = requests.Session()
    state.client.headers["User-Agent"] = "flask-counter/1.0"
    state.client.cookies.set("visitor", "first")
    return state


def create_app(state_path):
    app = flask.Flask(__name__)
    state = new_state()
    if os.path.exists(state_path):
        turbodill.load_module(state_path, module=state, strict=True)
    lock = threading.Lock()

    def snapshot():
        return {
            "count": state.count,
            "last_hit": state.last_hit,
            "user_agent": state.client.headers["User-Agent"],
            "visitor": state.client.cookies.get("visitor"),
        }

    @app.post("/hit")
    def hit():
        with lock:
            state.count += 1
            state.last_hit = time.time()
            state.client.cookies.set("visitor", f"returning-{state.count}")
            turbodill.dump_module(state_path, module=state, strict=True)
            return snapshot()

    @app.get("/state")
    def show():
        with lock:
            return snapshot()

    return app


if __name__ == "__main__":
    path = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(os.path.dirname(turbodill.session.default_session_path()), "flask_counter.pkl")
    )
    print(f"state file: {path}")
    create_app(path).run()
