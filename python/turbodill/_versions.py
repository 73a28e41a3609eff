"""Which CPython builds turbodill runs on, checked before its native module
loads (which is built for one minor version and relies on the GIL).

3.11, 3.12 and 3.13 are tested in CI. 3.14 is accepted: its native build
leaves out the fast paths that read object layouts (see
docs/architecture.md, "Python versions"), so it is correct but slower.
"""

import sys
import sysconfig

SUPPORTED = ((3, 11), (3, 12), (3, 13), (3, 14))


def check_interpreter(implementation, version, gil_disabled):
    """Raise ImportError, saying why, unless turbodill supports this
    interpreter: ``implementation`` is ``sys.implementation.name``,
    ``version`` a ``sys.version_info``-like tuple, ``gil_disabled`` whether
    it is a free-threaded build."""
    major, minor = version[0], version[1]
    if implementation != "cpython":
        raise ImportError(f"turbodill supports CPython only, not {implementation}")
    if (major, minor) not in SUPPORTED:
        supported = ", ".join("%d.%d" % v for v in SUPPORTED)
        raise ImportError(f"turbodill supports CPython {supported}, not {major}.{minor}")
    if gil_disabled:
        raise ImportError(
            f"turbodill does not support free-threaded CPython ({major}.{minor}t): its pickler "
            "relies on the GIL; use the default build of CPython"
        )


check_interpreter(sys.implementation.name, sys.version_info, bool(sysconfig.get_config_var("Py_GIL_DISABLED")))
