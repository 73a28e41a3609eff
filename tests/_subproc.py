"""The one way the tests run a fresh interpreter (this one's executable).

``python(args)`` runs it with ``args`` and captures its output; ``code`` runs
a snippet (``-c``) and ``script`` runs one as a ``__main__`` file, for tests
that need ``__file__``. With ``check`` (the default), an exit status other
than 0 fails the test with the tail of stderr. A run its ``timeout`` stopped
has ``returncode == "timeout"`` and the output it wrote until then.
"""

import os
import subprocess
import sys
import textwrap

TIMED_OUT = "timeout"


def python(args, *, stdin=None, cwd=None, env=None, timeout=120, check=True, text=False, preexec_fn=None):
    try:
        proc = subprocess.run(
            [sys.executable, *map(str, args)],
            input=stdin,
            cwd=cwd,
            env=env,
            timeout=timeout,
            capture_output=True,
            text=text,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired as e:
        stdout, stderr = e.stdout or b"", e.stderr or b""  # bytes even with text=True
        if text:
            stdout, stderr = stdout.decode(errors="replace"), stderr.decode(errors="replace")
        proc = subprocess.CompletedProcess(e.cmd, TIMED_OUT, stdout, stderr)
    if check:
        stderr = proc.stderr if text else proc.stderr.decode(errors="replace")
        assert proc.returncode == 0, f"exit status {proc.returncode}:\n{stderr[-4000:]}"
    return proc


def code(source, *args, isolated=False, **kwds):
    """Run ``source`` (dedented) with ``-c``; ``isolated`` adds ``-I -S``
    (no user site, no ``site``, no current directory on the path)."""
    flags = ["-I", "-S"] if isolated else []
    return python([*flags, "-c", textwrap.dedent(source), *args], **kwds)


def script(source, *, cwd, **kwds):
    """Run ``source`` (dedented) as the script ``main_script.py`` in ``cwd``."""
    path = os.path.join(cwd, "main_script.py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(source))
    try:
        return python([path], cwd=cwd, **kwds)
    finally:
        os.unlink(path)
