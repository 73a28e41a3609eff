from collections.abc import Callable
from pickle import PicklingError, UnpicklingError
from typing import Any, Protocol, final

from typing_extensions import disjoint_base

__all__ = [
    "HIGHEST_PROTOCOL",
    "InspectError",
    "MsgpackCodec",
    "Pickler",
    "PicklerMemoProxy",
    "PicklingRecursionError",
    "UnpicklableError",
    "_MSGPACK_KIND_ENUM",
    "_MSGPACK_KIND_NAMEDTUPLE",
    "_MSGPACK_KIND_OBJECT",
    "_SESSION_MODULE_PID",
    "_SESSION_NAMESPACE_PID",
    "_SESSION_PREFIX_SIZE",
    "__version__",
    "_by_value_modules",
    "_forget_type_caches",
    "_gen_restore",
    "_session_header_size",
    "_set_trace_sink",
    "_session_pack_header",
    "_session_pickle_entries",
    "_session_read_header",
    "dump",
    "dumps",
    "inspect_opcodes",
    "settings",
]

class _Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...

HIGHEST_PROTOCOL: int
__version__: str
settings: dict[str, Any]
_by_value_modules: set[str]

class UnpicklableError(PicklingError, TypeError): ...
class PicklingRecursionError(PicklingError, RecursionError): ...

class InspectError(UnpicklingError):
    offset: int
    truncated: bool

def dumps(
    obj: Any,
    protocol: int | None = None,
    byref: bool | None = None,
    fmode: int | None = None,
    recurse: bool | None = None,
    *,
    fix_imports: bool = True,
    buffer_callback: Callable[[Any], Any] | None = None,
    deterministic: bool = False,
    key: bytes | str | None = None,
) -> bytes: ...
def dump(
    obj: Any,
    file: _Writable,
    protocol: int | None = None,
    byref: bool | None = None,
    fmode: int | None = None,
    recurse: bool | None = None,
    *,
    fix_imports: bool = True,
    buffer_callback: Callable[[Any], Any] | None = None,
    deterministic: bool = False,
    key: bytes | str | None = None,
) -> None: ...
def _forget_type_caches() -> None: ...
def _gen_restore(
    gen: Any, frame_state: int, lasti: int, slots: list[Any], present: bytes, exc_value: BaseException | None
) -> None: ...
def _set_trace_sink(sink: Callable[[str, object, str, object], object] | None) -> None: ...
def inspect_opcodes(data: bytes | bytearray | memoryview) -> dict[str, Any]: ...

@final
class PicklerMemoProxy:
    def copy(self) -> dict[int, tuple[int, Any]]: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...

@disjoint_base
class Pickler:
    fast: bool
    @property
    def bin(self) -> bool: ...
    memo: PicklerMemoProxy
    def __init__(
        self,
        file: _Writable,
        protocol: int | None = None,
        fix_imports: bool = True,
        buffer_callback: Callable[[Any], Any] | None = None,
        *,
        byref: bool | None = None,
        fmode: int | None = None,
        recurse: bool | None = None,
        deterministic: bool = False,
    ) -> None: ...
    def dump(self, obj: Any) -> None: ...
    def clear_memo(self) -> None: ...

# Sessions (used by turbodill.session; private).
_SESSION_PREFIX_SIZE: int
_SESSION_MODULE_PID: str
_SESSION_NAMESPACE_PID: str

def _session_pickle_entries(
    module: Any, entries: list[tuple[str, Any]], protocol: int
) -> list[bytes | BaseException]: ...
def _session_pack_header(header: dict[str, Any]) -> bytes: ...
def _session_header_size(prefix: bytes) -> int: ...
def _session_read_header(data: bytes) -> dict[str, Any]: ...

# The kinds of turbodill.msgpack's registry entries (used by turbodill.msgpack; private).
_MSGPACK_KIND_OBJECT: int
_MSGPACK_KIND_NAMEDTUPLE: int
_MSGPACK_KIND_ENUM: int

@final
class MsgpackCodec:
    """turbodill.msgpack's core; ``turbodill.msgpack`` makes the one instance."""

    def __new__(
        cls,
        encode_error: type[Exception],
        decode_error: type[Exception],
        by_type: dict[type, tuple[str, int, tuple[str, ...]]],
        by_name: dict[str, tuple[type, int, tuple[str, ...]]],
    ) -> MsgpackCodec: ...
    def packb(self, obj: Any) -> bytes: ...
    def unpackb(self, data: bytes | bytearray | memoryview) -> Any: ...
