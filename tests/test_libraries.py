"""Real library objects, pickled in one interpreter and used in another."""

import socket

from test_by_value import dump_in_main, load_fresh


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_requests_session_with_digest_auth_and_cookies():
    definitions = """
    import requests
    from requests.auth import HTTPDigestAuth
    session = requests.Session()
    session.auth = HTTPDigestAuth('alice', 's3cret')
    session.cookies.set('sid', 'abc123', domain='example.org')
    session.headers['X-Trace'] = 'on'
    """
    check = """
    import requests
    s = obj
    assert isinstance(s, requests.Session)
    assert (s.auth.username, s.auth.password) == ('alice', 's3cret')
    s.auth.init_per_thread_state()  # its thread-local state works
    assert s.auth._thread_local.nonce_count == 0
    prepared = s.prepare_request(requests.Request('GET', 'http://example.org/x'))
    assert prepared.headers['X-Trace'] == 'on' and prepared.headers['Cookie'] == 'sid=abc123'
    """
    load_fresh(dump_in_main(definitions, "session"), check)


# A minimal RESP server on loopback: answers PING with PONG, GET from a
# dict, and +OK to the handshake commands redis-py sends.
FAKE_REDIS = """
import socket, threading
STORE = {b'greeting': b'hello'}
def serve(server):
    conn, _ = server.accept()
    buf = b''
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while buf.startswith(b'*'):
                lines = buf.split(b'\\r\\n')
                n = int(lines[0][1:])
                if len(lines) < 1 + 2 * n + 1:
                    break
                args = [lines[2 + 2 * i] for i in range(n)]
                buf = b'\\r\\n'.join(lines[1 + 2 * n:])
                cmd = args[0].upper()
                if cmd == b'PING':
                    conn.sendall(b'+PONG\\r\\n')
                elif cmd == b'GET':
                    v = STORE.get(args[1])
                    conn.sendall(b'$-1\\r\\n' if v is None else b'$%d\\r\\n%s\\r\\n' % (len(v), v))
                else:
                    conn.sendall(b'+OK\\r\\n')
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', PORT))
server.listen(1)
threading.Thread(target=serve, args=(server,), daemon=True).start()
"""


def test_redis_client_connects_after_the_trip():
    port = free_port()
    definitions = f"""
    import redis
    client = redis.Redis(host='127.0.0.1', port={port}, db=0, socket_timeout=5, protocol=2)
    """
    check = (
        FAKE_REDIS.replace("PORT", str(port))
        + """
import redis
from redis import connection
c = obj
assert isinstance(c, redis.Redis)
# Module-level sentinels came back as the same objects (by reference).
kwargs = c.connection_pool.connection_kwargs
assert kwargs['socket_keepalive_options'] is connection.SENTINEL or 'socket_keepalive_options' not in kwargs
assert c.ping() is True
assert c.get('greeting') == b'hello'
"""
    )
    load_fresh(dump_in_main(definitions, "client"), check)
