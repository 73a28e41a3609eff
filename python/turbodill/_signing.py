"""Signed payloads: a pickle in an envelope that carries its HMAC-SHA256.

``dumps(obj, key=k)`` writes the envelope; ``loads(data, key=k)`` checks the
tag (``hmac.compare_digest``) before a single opcode runs. Layout, version 1
(integers little-endian)::

    offset  size  field
    0       6     magic b"\\xffTDSIG" (0xff is no opcode: an unpickler given
                  the envelope stops at its first byte, running nothing)
    6       1     envelope version (1)
    7       1     algorithm (1: HMAC-SHA256)
    8       4     key id: HMAC-SHA256(key, b"turbodill key id")[:4]
    12      8     payload length
    20      32    tag: HMAC-SHA256(key, bytes 0..20 + payload)
    52      n     payload: the pickle

The tag covers the header, so the version, algorithm and length cannot be
changed without the key. The key id picks, among the keys a loader accepts
(rotation), the one to check, and tells "unknown key" from "modified" in the
error; it reveals no more about the key than the tag itself does. The length
lets ``load`` read exactly one envelope from a stream.
"""

import functools
import hashlib
import hmac
from pickle import UnpicklingError

MAGIC = b"\xffTDSIG"
VERSION = 1
HMAC_SHA256 = 1
HEADER_SIZE = 20
TAG_SIZE = hashlib.sha256().digest_size
ENVELOPE_SIZE = HEADER_SIZE + TAG_SIZE
#: Reads of a payload from a file, by length field, go at most this far at a
#: time: a header claiming 2**60 bytes meets the end of the file, not a
#: 2**60-byte allocation.
READ_CHUNK = 1 << 20


class SignatureError(UnpicklingError):
    """A signed payload that does not verify (wrong key, any modified or
    missing byte, unsupported envelope), unsigned data given a key, or signed
    data given none. Raised before any opcode of the payload runs."""


NOT_SIGNED = "not a signed payload (a key was given, so only signed payloads load)"
SIGNED_WITHOUT_KEY = "the payload is signed: pass key= to check and load it"


def _key_bytes(key):
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key)
    else:
        raise TypeError(f"a key must be bytes or str, not {type(key).__name__}")
    if not key:
        raise ValueError("a key must not be empty")
    return key


def _accepted_keys(key):
    """One key, or an iterable of accepted keys (key rotation)."""
    if isinstance(key, (str, bytes, bytearray, memoryview)):
        return [_key_bytes(key)]
    keys = [_key_bytes(k) for k in key]
    if not keys:
        raise ValueError("no key given: key= needs at least one key")
    return keys


@functools.lru_cache(maxsize=64)
def _key_id(key):
    return hmac.digest(key, b"turbodill key id", "sha256")[:4]


def _tag(key, header, *payload):
    mac = hmac.new(key, header, "sha256")
    for part in payload:
        mac.update(part)
    return mac.digest()


def _header(key, length):
    return b"".join((MAGIC, bytes((VERSION, HMAC_SHA256)), _key_id(key), length.to_bytes(8, "little")))


def sign(payload, key):
    """The envelope of ``payload`` signed with ``key`` (bytes, or str as
    UTF-8). ``dumps`` and ``dump`` call this when given ``key=``."""
    key = _key_bytes(key)
    header = _header(key, len(payload))
    return b"".join((header, _tag(key, header, payload), payload))


def sign_chunks(chunks, key):
    """The envelope of the payload ``b"".join(chunks)``, as chunks to write
    one after the other (the payload is never joined): sessions."""
    key = _key_bytes(key)
    header = _header(key, sum(len(chunk) for chunk in chunks))
    return [header, _tag(key, header, *chunks), *chunks]


def is_signed(data):
    """Whether ``data`` (bytes-like) starts like an envelope."""
    return memoryview(data)[: len(MAGIC)] == MAGIC


def refuse_signed(data):
    """SignatureError when ``data`` is an envelope: signed data loads only
    with a key (never by falling back to loading it unchecked)."""
    if is_signed(data):
        raise SignatureError(SIGNED_WITHOUT_KEY)


def _parse_header(header):
    """(key id, payload length) of an envelope header; SignatureError if it
    is none or one this version cannot check."""
    if len(header) < HEADER_SIZE or header[: len(MAGIC)] != MAGIC:
        raise SignatureError(NOT_SIGNED)
    if header[6] != VERSION:
        raise SignatureError(
            f"unsupported signed envelope version {header[6]} (this turbodill reads version {VERSION})"
        )
    if header[7] != HMAC_SHA256:
        raise SignatureError(f"unsupported signature algorithm {header[7]}")
    return bytes(header[8:12]), int.from_bytes(header[12:20], "little")


def _check(header, tag, payload, key):
    key_id, _ = _parse_header(header)
    candidates = [k for k in _accepted_keys(key) if _key_id(k) == key_id]
    if not candidates:
        raise SignatureError("the payload is signed with a key that is not among the accepted keys")
    for k in candidates:
        if hmac.compare_digest(_tag(k, header, payload), tag):
            return
    raise SignatureError("signature mismatch: the payload was modified or signed with another key")


def verify(data, key):
    """The payload of the envelope ``data`` (a memoryview), once its tag
    checks against one of the accepted keys."""
    view = memoryview(data).cast("B")
    _, length = _parse_header(view[:HEADER_SIZE])
    if len(view) != ENVELOPE_SIZE + length:
        raise SignatureError(
            f"signed payload of {len(view) - ENVELOPE_SIZE} bytes where the envelope says {length}: "
            "truncated or extended"
        )
    payload = view[ENVELOPE_SIZE:]
    _check(view[:HEADER_SIZE], view[HEADER_SIZE:ENVELOPE_SIZE], payload, key)
    return payload


def unverified_payload(data):
    """The payload part of an envelope, unchecked (for ``inspect``)."""
    return memoryview(data).cast("B")[ENVELOPE_SIZE:]


def _read_exactly(file, size):
    parts = []
    while size > 0:
        part = file.read(min(size, READ_CHUNK))
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts), size == 0


def read_signed(file, key):
    """Read one envelope from a binary file (exactly its bytes) and return
    its payload, once its tag checks."""
    header, complete = _read_exactly(file, HEADER_SIZE)
    if not header:
        raise EOFError("Ran out of input")
    if not complete:
        if not MAGIC.startswith(header[: len(MAGIC)]):
            raise SignatureError(NOT_SIGNED)
        raise SignatureError("truncated signed payload")
    _, length = _parse_header(header)
    rest, complete = _read_exactly(file, TAG_SIZE + length)
    if not complete:
        raise SignatureError(f"truncated signed payload: the envelope says {length} bytes")
    tag, payload = rest[:TAG_SIZE], memoryview(rest)[TAG_SIZE:]
    _check(header, tag, payload, key)
    return payload
