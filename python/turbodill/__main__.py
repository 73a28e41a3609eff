"""turbodill's command line: ``python -m turbodill SUBCOMMAND ...``.

``inspect FILE``: what the pickle in FILE (``-``: standard input) would
import and call, read from its opcodes without loading it. Exit status 0:
data only (``loads(data, allow="data")`` accepts it); 1: it imports or calls
something else; 2: the file could not be read or is not a pickle.

``session-info FILE``: what a session file holds (entries, their types and
sizes, those left out), read from its header without unpickling anything
(``--key-env VAR`` for a signed session: the key is read from the
environment, never from the command line).

Each subcommand is a function in ``SUBCOMMANDS`` that adds its parser and
sets ``run``, a function of the parsed arguments returning the exit status.
"""

import argparse
import dataclasses
import json
import os
import sys

import turbodill

DATA_ONLY, NOT_DATA_ONLY, FAILED = 0, 1, 2


def _read(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _table(title, counts):
    if not counts:
        return [f"{title}: none"]
    width = max(len(name) for name in counts)
    return [f"{title:<{width + 2}}  count"] + [f"  {name:<{width}}  {count:>5}" for name, count in counts.items()]


def format_report(path, report):
    """The human-readable form of an ``InspectReport``."""
    size = f"{_plural(report.size, 'byte')}"
    if report.trailing_bytes:
        size += f" (+{report.trailing_bytes} trailing)"
    lines = [
        f"{path}: {'signed ' if report.signed else ''}pickle protocol {report.protocol}, {size}, "
        f"{_plural(report.opcode_count, 'opcode')}, {_plural(report.frame_count, 'frame')}",
        "data only: yes" if report.data_only else 'data only: no (beyond the "data" allowlist)',
    ]
    if not report.statically_resolvable:
        lines.append("not statically resolvable: some globals are named by strings known only at load time")
    if report.persistent_ids:
        lines.append(
            f"persistent ids: {', '.join(repr(p) if p is not None else '<dynamic>' for p in report.persistent_ids)}"
        )
    if report.buffer_count:
        lines.append(f"out-of-band buffers: {report.buffer_count}")
    lines.append("")
    lines += _table("imports", report.globals)
    lines.append("")
    lines += _table("calls", report.callables)
    return "\n".join(lines)


def _inspect(args):
    try:
        report = turbodill.inspect(_read(args.file))
    except (OSError, turbodill.UnpicklingError) as e:
        print(f"turbodill inspect: {args.file}: {e}", file=sys.stderr)
        return FAILED
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(format_report(args.file, report))
    return DATA_ONLY if report.data_only else NOT_DATA_ONLY


def _add_inspect(subparsers):
    parser = subparsers.add_parser(
        "inspect",
        help="what a pickle would import and call, without loading it",
        description="Report what the pickle in FILE would import and call, read from its opcodes without "
        'loading it. Exit status: 0 data only (loads(data, allow="data") accepts it), 1 it imports or '
        "calls something else, 2 the file could not be read or is not a pickle.",
    )
    parser.add_argument("file", help="a pickle file, or - for standard input")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_inspect)


def _session_info(args):
    try:
        key = None if args.key_env is None else os.environ[args.key_env]
    except KeyError:
        print(f"turbodill session-info: the environment has no {args.key_env}", file=sys.stderr)
        return FAILED
    try:
        info = turbodill.session_info(args.file, key=key)
    except turbodill.SignatureError as exc:
        hint = " (give its key with --key-env VAR)" if key is None else ""
        print(f"turbodill session-info: {args.file}: {exc}{hint}", file=sys.stderr)
        return FAILED
    except (OSError, turbodill.session.SessionError) as exc:
        print(f"turbodill session-info: {exc}", file=sys.stderr)
        return FAILED
    if args.json:
        print(
            json.dumps(
                {
                    "format": info.format,
                    "python": ".".join(map(str, info.python)),
                    "implementation": info.implementation,
                    "turbodill": info.turbodill,
                    "module": info.module,
                    "created": info.created.isoformat(),
                    "protocol": info.protocol,
                    "size": info.size,
                    "signed": info.signed,
                    "entries": [vars(entry) for entry in info.entries],
                    "skipped": [{"name": n, "type": t, "reason": r} for n, t, r in info.skipped],
                },
                indent=2,
            )
        )
        return 0
    python = ".".join(map(str, info.python))
    signed = "signed " if info.signed else ""
    print(f"{signed}session of module {info.module!r}: {len(info.entries)} entries, {info.size} bytes")
    print(f"written {info.created:%Y-%m-%d %H:%M:%S %Z} by {info.implementation} {python}, turbodill {info.turbodill}")
    print(f"format {info.format}, pickle protocol {info.protocol}")
    if info.entries:
        width_name = max(len(e.name) for e in info.entries)
        width_type = max(len(e.type) for e in info.entries)
        print()
        print(f"{'name':<{width_name}}  {'type':<{width_type}}  {'kind':<6}  {'bytes':>8}")
        for entry in info.entries:
            print(f"{entry.name:<{width_name}}  {entry.type:<{width_type}}  {entry.kind:<6}  {entry.size:>8}")
    if info.skipped:
        print()
        print("left out when saved:")
        for name, type_name, reason in info.skipped:
            print(f"  {name} ({type_name}): {reason}")
    return 0


def _add_session_info(subparsers):
    parser = subparsers.add_parser(
        "session-info",
        help="what a session file holds, without loading it",
        description="List the entries of a file written by dump_session / dump_module (name, type, kind, "
        "size) and those left out, from its header alone. Exit status 2 if it is not a session file.",
    )
    parser.add_argument("file", help="a session file")
    parser.add_argument("--key-env", metavar="VAR", help="the environment variable holding a signed session's key")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=_session_info)


SUBCOMMANDS = [_add_inspect, _add_session_info]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m turbodill", description="turbodill's command line tools")
    parser.add_argument(
        "--version", action="version", version=f"turbodill {turbodill.__version__} (Python {sys.version.split()[0]})"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
