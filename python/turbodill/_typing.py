"""Types the public signatures share (annotations only)."""

import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

# Bytes-like input, as ``pickle.loads`` takes it.
Buffer = bytes | bytearray | memoryview
# ``key=``: one key (bytes, or str as UTF-8), or the keys accepted when loading.
Key = bytes | str | Iterable[bytes | str]
# ``allow=``: "data", one "module.name" / "module.*" entry, or several.
Allow = str | Iterable[str]
# A dill-style saver: ``save(pickler, obj)``.
Saver = Callable[[Any, Any], None]
# A file name or an open binary file.
Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]


class Readable(Protocol):
    """What ``pickle.load`` reads from."""

    def read(self, size: int = ..., /) -> bytes: ...
    def readline(self) -> bytes: ...
