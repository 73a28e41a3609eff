"""Dask distributed with turbodill: a real LocalCluster (worker processes,
loopback), set up by preloading turbodill.dask or by install(client), fed by
a fresh ``__main__`` script closures over objects that only turbodill can
pickle: a held lock, and an Elasticsearch-style client delegating to a
transport that holds a lock (cloudpickle, Dask's fallback, refuses both)."""

import subprocess
import sys

import pytest

pytest.importorskip("distributed", reason="distributed (Dask) is not installed")

SCRIPT = r'''
import sys, threading
import distributed
import turbodill.dask

class Transport:
    def __init__(self, hosts):
        self.hosts = hosts
        self.lock = threading.Lock()
    def perform_request(self, method, path):
        with self.lock:
            return f"{method} {self.hosts[0]}{path}"

class Client:
    """Elasticsearch-style: calls it does not define go to its transport."""
    def __init__(self, transport):
        self.transport = transport
    def __getattr__(self, name):
        if name == "transport":   # not set yet: an object being loaded
            raise AttributeError(name)
        return getattr(self.transport, name)

if __name__ == "__main__":
    how = sys.argv[1]
    kw = dict(preload=["turbodill.dask"]) if how == "preload" else {}
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, **kw
    )
    with cluster, distributed.Client(cluster) as client:
        if how == "preload":   # the scheduler runs in this process
            turbodill.dask.install()
        elif how == "install":
            turbodill.dask.install(client)
        held = threading.Lock(); held.acquire()
        es = Client(Transport(["http://es:9200"]))
        f = lambda path: (held.locked(), es.perform_request("GET", path))
        assert client.submit(f, "/_search").result(timeout=60) == (True, "GET http://es:9200/_search")
        [remote] = client.scatter([es])
        assert client.submit(lambda c: c.perform_request("HEAD", "/"), remote).result(timeout=60) == "HEAD http://es:9200/"
        doubled = client.gather(client.map(lambda i: (held.locked(), i * 2), range(3)))
        assert doubled == [(True, 0), (True, 2), (True, 4)]
        back = client.submit(lambda: Client(Transport(["w"]))).result(timeout=60)   # pickled by the worker
        assert back.perform_request("PUT", "/x") == "PUT w/x"
    print("ok")
'''


@pytest.mark.parametrize("how", ["preload", "install"])
def test_local_cluster_submit_scatter_map(how, tmp_path):
    script = tmp_path / "main.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), how], capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-5000:]
    assert proc.stdout.decode().split() == ["ok"]


def test_without_turbodill_dask_refuses_the_closure(tmp_path):
    """The same script with Dask's own pickling: the closure over a held lock
    does not pickle (so the test above means something)."""
    script = tmp_path / "main.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), "none"], capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert b"lock" in proc.stderr
