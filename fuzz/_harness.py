"""The command line both harnesses share: ``--help``, a default time limit,
and a clear message when atheris is missing. Everything else goes to
libFuzzer (``-help=1`` lists its flags)."""

import sys

#: A run given no ``-max_total_time`` (nor ``-runs``) stops after this long.
DEFAULT_SECONDS = 60


def atheris_or_exit(doc):
    """atheris, once ``--help`` has been answered (with the harness's
    docstring ``doc``); exits with a message when atheris is not installed."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(doc)
        print(f"Without -max_total_time=SECONDS (or -runs=N) a run stops after {DEFAULT_SECONDS} s.")
        sys.exit(0)
    try:
        import atheris
    except ModuleNotFoundError:
        sys.exit(f"{sys.argv[0]} needs atheris, the fuzzing engine: pip install atheris")
    return atheris


def libfuzzer_argv(argv):
    """``argv`` for ``atheris.Setup``, with the default time limit unless it
    sets one."""
    if any(arg.startswith(("-max_total_time=", "-runs=")) for arg in argv[1:]):
        return list(argv)
    return [*argv, f"-max_total_time={DEFAULT_SECONDS}"]
