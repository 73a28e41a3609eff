"""Command line: ``python -m turbodill COMMAND``. Nothing here unpickles.

  session-info FILE [--json]   what a session file holds (from its header)
"""

import argparse
import json
import sys


def _session_info(args):
    from .session import SessionError, session_info

    try:
        info = session_info(args.file)
    except (OSError, SessionError) as exc:
        print(f"turbodill session-info: {exc}", file=sys.stderr)
        return 2
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
                    "entries": [vars(entry) for entry in info.entries],
                    "skipped": [{"name": n, "type": t, "reason": r} for n, t, r in info.skipped],
                },
                indent=2,
            )
        )
        return 0
    python = ".".join(map(str, info.python))
    print(f"session of module {info.module!r}: {len(info.entries)} entries, {info.size} bytes")
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m turbodill", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser("session-info", help="list what a session file holds, without loading it")
    info.add_argument("file", help="a file written by dump_session / dump_module")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=_session_info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
