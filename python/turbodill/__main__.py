"""turbodill's command line: ``python -m turbodill SUBCOMMAND ...``.

``inspect FILE``: what the pickle in FILE (``-``: standard input) would
import and call, read from its opcodes without loading it. Exit status 0:
data only (``loads(data, allow="data")`` accepts it); 1: it imports or calls
something else; 2: the file could not be read or is not a pickle.

Each subcommand is a function in ``SUBCOMMANDS`` that adds its parser and
sets ``run``, a function of the parsed arguments returning the exit status.
"""

import argparse
import dataclasses
import json
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
        lines.append(f"persistent ids: {', '.join(repr(p) if p is not None else '<dynamic>' for p in report.persistent_ids)}")
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


SUBCOMMANDS = [_add_inspect]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m turbodill", description="turbodill's command line tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
