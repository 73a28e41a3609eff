"""Kombu serializers (and so Celery's): ``turbodill`` and ``turbodill-msgpack``.

Both are registered through kombu's ``kombu.serializers`` entry point when
turbodill is installed; nothing to call. ``turbodill`` pickles by value
(lambdas, closures, ``__main__`` classes), signed when a key is configured:
``configure(key=...)`` (``turbodill.celery.setup(app)`` takes it from the
app's ``turbodill_key`` setting). ``turbodill-msgpack`` is the data-only
codec (``turbodill.msgpack``), for brokers that untrusted parties can
write to: loading never imports or calls anything.
"""

import sys

from . import dumps as _dumps, loads as _loads, msgpack as _msgpack

CONTENT_TYPE = "application/x-turbodill"
MSGPACK_CONTENT_TYPE = "application/x-turbodill-msgpack"

# (signing key, accepted keys): None while unsigned.
_keys = (None, None)


def configure(key=None):
    """Sign what the ``turbodill`` serializer encodes with ``key`` and load
    only payloads signed with it; a list of keys signs with the first and
    accepts any of them (rotation). ``None`` goes back to unsigned. Every
    process that encodes or decodes (clients and workers) needs the same
    configuration."""
    global _keys
    if key is None:
        _keys = (None, None)
    elif isinstance(key, (list, tuple)):
        if not key:
            raise ValueError("configure(key=[...]) needs at least one key")
        _keys = (key[0], list(key))
    else:
        _keys = (key, key)


def encode(obj):
    return _dumps(obj, key=_keys[0])


# Set by turbodill.celery.setup's worker hook: this worker's prefork pool
# sends task requests with turbodill.
prefork_ready = False


class PreforkNotSetUpError(RuntimeError):
    """A Celery prefork worker was given a ``turbodill`` task without
    ``turbodill.celery.setup(app)``."""


def _refuse_in_unready_prefork_worker():
    # A prefork worker's main process decodes the task, then re-pickles the
    # request with the stdlib pickler to hand it to a pool process: a lambda
    # argument fails there, the message is never acknowledged, the task hangs.
    if "celery.concurrency.asynpool" not in sys.modules:
        return
    import billiard.process

    if billiard.process.current_process().name == "MainProcess":
        raise PreforkNotSetUpError(
            "this Celery prefork worker would re-pickle turbodill task arguments with the stdlib "
            "pickler: call turbodill.celery.setup(app) in the module that defines the Celery app"
        )


def decode(data):
    if not prefork_ready:
        _refuse_in_unready_prefork_worker()
    return _loads(data, key=_keys[1])


# kombu's ``register(name, *args)`` arguments, named by the entry points.
serializer = (encode, decode, CONTENT_TYPE, "binary")
msgpack_serializer = (_msgpack.packb, _msgpack.unpackb, MSGPACK_CONTENT_TYPE, "binary")
