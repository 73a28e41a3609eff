"""Runs the parity corpus and prints its table.

    python tests/parity/report.py [--out FILE] [--jobs N] [--only NAME]... [--failures]

Each (library, site) dumps in one process and each (library, site, protocol)
loads in one fresh process. A worker that dies (a signal) is restarted past
the case it died on, which counts as failed. The table gives, per site and
protocol, how many cases each library passes; then every loss: a case that
cloudpickle or dill passes and turbodill fails.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cases as corpus  # noqa: E402
import harness  # noqa: E402

PEERS = ("cloudpickle", "dill")


def run_worker(call, workdir):
    code = f"import sys; sys.path.insert(0, {HERE!r}); import harness; harness.{call}"
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, timeout=300)
    return proc.returncode, proc.stderr.decode(errors="replace")[-2000:]


def dump_batch(lib, site, workdir):
    """Dump file of one (library, site); cases whose dumper died are marked."""
    out = os.path.join(workdir, f"dump-{lib}-{site}.pkl")
    start = 0
    while True:
        rc, err = run_worker(f"dump({lib!r}, {site!r}, {workdir!r}, {out!r}, {start})", workdir)
        records, started = harness.read_records(out) if os.path.exists(out) else ({}, None)
        if rc == 0:
            return out, {}
        if started is None:
            raise RuntimeError(f"dumper {lib}/{site} failed outside a case:\n{err}")
        crashed = {started: f"dumps: process died (exit {rc}) {err.strip().splitlines()[-1:]}"}
        with open(out, "ab") as f:
            import pickle

            pickle.dump(("done", started, {p: crashed[started] for p in harness.PROTOCOLS}), f)
        start = started + 1


def load_batch(lib, site, protocol, workdir, dump_path):
    out = os.path.join(workdir, f"load-{lib}-{site}-{protocol}.jsonl")
    outcomes, skip = {}, set()
    while True:
        rc, err = run_worker(
            f"load({lib!r}, {site!r}, {protocol}, {workdir!r}, {dump_path!r}, {out!r}, {sorted(skip)!r})", workdir
        )
        started = None
        with open(out) as f:
            for line in f:
                entry = json.loads(line)
                if "start" in entry:
                    started = entry["start"]
                else:
                    outcomes[entry["index"]] = entry["outcome"]
                    skip.add(entry["index"])
                    started = None
        if rc == 0:
            return outcomes
        if started is None:
            raise RuntimeError(f"loader {lib}/{site}/{protocol} failed outside a case:\n{err}")
        outcomes[started] = f"loads: process died (exit {rc}) {err.strip().splitlines()[-1:]}"
        skip.add(started)


def run_corpus(jobs=2, only=None):
    """{(lib, site, protocol): {case index: "pass" or the failure}}."""
    selected = [i for i, case in enumerate(corpus.CASES) if only is None or case.name in only]
    results = {}
    with tempfile.TemporaryDirectory(prefix="parity-") as workdir:
        harness.write_site_packages(workdir, corpus.CASES)
        # dill's pure-Python dumps take longest: they start first.
        batches = [(lib, site) for lib in reversed(harness.LIBRARIES) for site in harness.SITES]
        with ThreadPoolExecutor(jobs) as pool:
            dumped = dict(zip(batches, pool.map(lambda b: dump_batch(*b, workdir), batches)))
            loads = [(lib, site, p) for lib, site in batches for p in harness.PROTOCOLS]
            outcomes = pool.map(lambda k: load_batch(*k, workdir, dumped[k[:2]][0]), loads)
            for key, got in zip(loads, outcomes):
                results[key] = {i: got[i] for i in selected if i in got}
    return results


def losses(results):
    """[(case, site, protocol, peers that pass, turbodill's failure, excuse)]:
    excuse is the case's one-line reason when turbodill differs on purpose
    from every peer that passes, else None."""
    found = []
    for (lib, site, protocol), outcomes in results.items():
        if lib != "turbodill":
            continue
        for index, outcome in outcomes.items():
            if outcome == "pass":
                continue
            # dill has no by-value registry: its "byvalue" site imports the
            # module at load, so its passes there are by reference, not rivals.
            rivals = [p for p in PEERS if not (p == "dill" and site == "byvalue")]
            winners = [p for p in rivals if results[(p, site, protocol)].get(index) == "pass"]
            if winners:
                case = corpus.CASES[index]
                excused = all(p in case.differs for p in winners)
                excuse = "; ".join(case.differs[p] for p in winners) if excused else None
                found.append((case, site, protocol, winners, outcome, excuse))
    return sorted(found, key=lambda x: (x[0].name, x[1], x[2]))


def table(results):
    lines = []
    available = sum(1 for case in corpus.CASES if case.available())
    lines.append(
        f"Parity corpus: {len(corpus.CASES)} cases ({available} with their optional packages here), "
        f"3 sites, protocols {', '.join(map(str, harness.PROTOCOLS))}; Python {sys.version.split()[0]}"
    )
    lines.append(
        "Sites: main = defined in __main__; local = inside a function of an importable module (importable at load); "
        "byvalue = module registered with register_pickle_by_value, not importable at load. dill has no such "
        "registry: its byvalue column loads with the module importable (by reference), so it counts in no loss. "
        "dill runs with recurse=True (its default names __builtin__.__main__, which plain pickle.loads cannot resolve)."
    )
    lines.append("")
    header = f"| {'site':8} | proto | cases | {' | '.join(f'{lib:>11}' for lib in harness.LIBRARIES)} |"
    lines.append(header)
    lines.append("|----------|-------|-------|" + "|".join("-" * 13 for _ in harness.LIBRARIES) + "|")
    totals = {lib: 0 for lib in harness.LIBRARIES}
    total_cases = 0
    for site in harness.SITES:
        for protocol in harness.PROTOCOLS:
            counts = [sum(o == "pass" for o in results[(lib, site, protocol)].values()) for lib in harness.LIBRARIES]
            n = len(results[("turbodill", site, protocol)])
            total_cases += n
            for lib, c in zip(harness.LIBRARIES, counts):
                totals[lib] += c
            lines.append(f"| {site:8} | {protocol:5} | {n:5} | " + " | ".join(f"{c:11}" for c in counts) + " |")
    lines.append(
        f"| {'all':8} | {'':5} | {total_cases:5} | "
        + " | ".join(f"{totals[lib]:11}" for lib in harness.LIBRARIES)
        + " |"
    )
    lines.append("")
    lost = losses(results)
    unexplained = [x for x in lost if x[5] is None]
    lines.append(
        f"Losses (a peer passes, turbodill fails), per (case, site, protocol): {len(lost)}, "
        f"of which {len(lost) - len(unexplained)} deliberate. By case:"
    )
    grouped = {}
    for case, site, protocol, winners, outcome, excuse in lost:
        entry = grouped.setdefault(case.name, (case, {}, set(), outcome, excuse))
        entry[1].setdefault(site, []).append(protocol)
        entry[2].update(winners)
    for case, where, winners, outcome, excuse in grouped.values():
        tag = f"deliberate: {excuse}" if excuse else (f"issue 9 defect {case.defect}" if case.defect else "UNEXPLAINED")
        places = ", ".join(f"{site} {''.join(map(str, protocols))}" for site, protocols in where.items())
        lines.append(f"- {case.name} [{places}; {'/'.join(sorted(winners))} pass] {tag}: {outcome}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="also write the table to this file")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", action="append", help="a case's name (repeat for more)")
    parser.add_argument("--failures", action="store_true", help="list every failure of every library")
    args = parser.parse_args()
    started = time.monotonic()
    results = run_corpus(args.jobs, set(args.only) if args.only else None)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = table(results) + (
        f"\n\n({time.monotonic() - started:.1f} s wall, {usage.ru_utime + usage.ru_stime:.1f} s CPU in the workers)"
    )
    if args.failures:
        for key, outcomes in sorted(results.items()):
            for index, outcome in sorted(outcomes.items()):
                if outcome != "pass":
                    text += f"\n{key} {corpus.CASES[index].name}: {outcome}"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
