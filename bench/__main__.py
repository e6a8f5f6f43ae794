"""`make bench`: run every benchmark in turn, each as its own process (clean memory, own loop).

Each benchmark prints its own figures (medians of several runs); pass a module name to run
just that one, e.g. ``python -m bench journal_bench``; run a module directly
(``python -m bench.journal_bench --help``) to pass it options.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

BENCHMARKS = [
    "actors_bench",
    "persist_bench",
    "journal_bench",
    "http_bench",
    "cli_bench",
    "user_bench",
    "restart_bench",
    "placement_bench",
    "cluster_bench",
    "service_bench",
    "runtime_floor",
]


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {BENCHMARKS}")
        return 2
    chosen = argv or BENCHMARKS
    failed = []
    for name in chosen:
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"== bench.{name}: not present, skipped", flush=True)
            continue
        print(f"== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
