"""Celery and kombu with turbodill: the serializers kombu finds through its
entry point, and a real Celery worker with the prefork pool on a real Redis
(started here on a free loopback port), fed a lambda by a fresh ``__main__``
client that gets a ``__main__`` dataclass back, signed, and a tampered message
that the worker refuses."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("celery", reason="celery is not installed")
pytest.importorskip("kombu", reason="kombu is not installed")
pytest.importorskip("redis", reason="redis (the Python client) is not installed")
from kombu import serialization  # noqa: E402
from kombu.exceptions import DecodeError  # noqa: E402

import turbodill  # noqa: E402
import turbodill.kombu  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REDIS_SERVER = shutil.which("redis-server")
needs_redis_server = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server (the Debian package) is not installed"
)


@pytest.fixture
def redis_url(tmp_path):
    server = REDIS_SERVER
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def unsigned():
    yield
    turbodill.kombu.configure(key=None)


def test_kombu_finds_both_serializers_through_its_entry_point(unsigned):
    assert serialization.registry.name_to_type["turbodill"] == turbodill.kombu.CONTENT_TYPE
    assert serialization.registry.name_to_type["turbodill-msgpack"] == turbodill.kombu.MSGPACK_CONTENT_TYPE
    content_type, encoding, body = serialization.dumps({"f": lambda x: x + 1}, serializer="turbodill")
    assert (content_type, encoding) == ("application/x-turbodill", "binary")
    assert serialization.loads(body, content_type, encoding, accept=[content_type])["f"](1) == 2
    content_type, encoding, body = serialization.dumps({"a": (1, 2.5)}, serializer="turbodill-msgpack")
    assert serialization.loads(body, content_type, encoding, accept=[content_type]) == {"a": (1, 2.5)}
    with pytest.raises(Exception, match="function"):
        serialization.dumps(lambda: 0, serializer="turbodill-msgpack")


def test_signed_serializer_refuses_tampered_and_unsigned_payloads(unsigned):
    turbodill.kombu.configure(key=[b"new", b"old"])
    content_type, encoding, body = serialization.dumps([1, 2], serializer="turbodill")
    assert turbodill.loads(body, key=b"new") == [1, 2]
    assert serialization.loads(body, content_type, encoding, accept=[content_type]) == [1, 2]
    tampered = body[:-3] + bytes([body[-3] ^ 1]) + body[-2:]
    with pytest.raises(DecodeError, match="modified|does not verify|signature"):
        serialization.loads(tampered, content_type, encoding, accept=[content_type])
    with pytest.raises(DecodeError, match="not a signed payload"):
        serialization.loads(turbodill.dumps([1, 2]), content_type, encoding, accept=[content_type])
    assert serialization.loads(turbodill.dumps([3], key=b"old"), content_type, encoding, accept=[content_type]) == [3]


TASKS = """
import os
import turbodill.celery
from celery import Celery

app = Celery("tdtasks", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
if os.environ["BROKER_URL"] == "filesystem://":   # a broker without an event loop
    folder = os.environ["BROKER_FOLDER"]
    app.conf.broker_transport_options = {"data_folder_in": folder, "data_folder_out": folder,
                                         "processed_folder": folder}
app.conf.turbodill_key = os.environ.get("TURBODILL_KEY")
app.conf.broker_connection_retry_on_startup = True
if os.environ.get("SET_UP") == "1":
    turbodill.celery.setup(app)
else:   # what a user writes by hand: the serializer alone
    app.conf.update(task_serializer="turbodill", result_serializer="turbodill",
                    accept_content=["turbodill"], result_accept_content=["turbodill"])

@app.task
def apply(f, x):
    return f(x)
"""

CLIENT = """
import dataclasses, sys
import kombu.serialization
import turbodill
from tdtasks import apply

@dataclasses.dataclass
class Point:
    x: int
    y: int

if __name__ == "__main__":
    k = 3
    p = apply.delay(lambda v: Point(v, v * k), 5).get(timeout=20)
    assert type(p) is Point and p == Point(5, 15), p
    if sys.argv[1] == "tamper":
        # The signed payload with one byte changed, under the same content type.
        def tampered(obj):
            data = bytearray(turbodill.kombu.encode(obj))
            data[-5] ^= 1
            return bytes(data)
        kombu.serialization.register("tampered", tampered, None, turbodill.kombu.CONTENT_TYPE, "binary")
        r = apply.apply_async((lambda v: v, 1), serializer="tampered")
        print(r.id)
    print("ok")
"""


def start_worker(tmp_path, env):
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tdtasks",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, log


def stop_worker(proc, log):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def wait_for_log(tmp_path, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in (tmp_path / "worker.log").read_bytes():
            return True
        time.sleep(0.1)
    return False


@needs_redis_server
def test_prefork_worker_runs_a_lambda_signed_and_refuses_a_tampered_message(redis_url, tmp_path):
    (tmp_path / "tdtasks.py").write_text(TASKS)
    (tmp_path / "client.py").write_text(textwrap.dedent(CLIENT))
    env = {
        **os.environ,
        "BROKER_URL": redis_url,
        "BACKEND_URL": redis_url,
        "TURBODILL_KEY": "s3cret",
        "SET_UP": "1",
        "PYTHONPATH": str(tmp_path),
    }
    worker, log = start_worker(tmp_path, env)
    try:
        client = subprocess.run(
            [sys.executable, "client.py", "tamper"], cwd=tmp_path, env=env, capture_output=True, timeout=40
        )
        assert client.returncode == 0, client.stderr.decode()[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
        task_id, ok = client.stdout.decode().split()
        assert ok == "ok"
        assert wait_for_log(tmp_path, b"SignatureError", 15), (tmp_path / "worker.log").read_text()[-3000:]
        worker_log = (tmp_path / "worker.log").read_text()
        assert "Can't decode message body" in worker_log
        assert worker_log.count("succeeded in") == 1  # the tampered task never ran
    finally:
        stop_worker(worker, log)


@needs_redis_server
def test_prefork_worker_without_setup_says_so_instead_of_hanging(redis_url, tmp_path):
    (tmp_path / "tdtasks.py").write_text(TASKS)
    (tmp_path / "client.py").write_text(textwrap.dedent(CLIENT))
    env = {**os.environ, "BROKER_URL": redis_url, "BACKEND_URL": redis_url, "SET_UP": "0", "PYTHONPATH": str(tmp_path)}
    worker, log = start_worker(tmp_path, env)
    try:
        client = subprocess.Popen([sys.executable, "client.py", "plain"], cwd=tmp_path, env=env)
        try:
            assert wait_for_log(tmp_path, b"PreforkNotSetUpError", 20), (tmp_path / "worker.log").read_text()[-3000:]
        finally:
            client.kill()
            client.wait()
        assert "call turbodill.celery.setup(app)" in (tmp_path / "worker.log").read_text()
    finally:
        stop_worker(worker, log)


@needs_redis_server
def test_prefork_worker_without_an_event_loop_runs_a_lambda(redis_url, tmp_path):
    """A broker without an event loop (the filesystem transport) gives the
    prefork worker billiard's blocking pool: set up the same way."""
    (tmp_path / "tdtasks.py").write_text(TASKS)
    (tmp_path / "client.py").write_text(textwrap.dedent(CLIENT))
    (tmp_path / "broker").mkdir()
    env = {
        **os.environ,
        "BROKER_URL": "filesystem://",
        "BROKER_FOLDER": str(tmp_path / "broker"),
        "BACKEND_URL": redis_url,
        "SET_UP": "1",
        "PYTHONPATH": str(tmp_path),
    }
    worker, log = start_worker(tmp_path, env)
    try:
        client = subprocess.run(
            [sys.executable, "client.py", "plain"], cwd=tmp_path, env=env, capture_output=True, timeout=40
        )
        assert client.returncode == 0, client.stderr.decode()[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
        assert client.stdout.decode().split() == ["ok"]
    finally:
        stop_worker(worker, log)
