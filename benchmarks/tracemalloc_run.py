"""Where the generator's memory goes: `lkload run` under tracemalloc, two snapshots compared.

    scripts/netns -- .venv/bin/python benchmarks/tracemalloc_run.py SCENARIO \\
        [--first-s 150] [--then-s 240] [--out /tmp/lkload-trace] [-- lkload run flags]

Takes a snapshot FIRST_S seconds after the start and another THEN_S seconds later, and
writes the largest differences (by traceback and by file) to OUT/diff.txt. Only Python
allocations are traced: RSS growth the diff does not show is native (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

from inprocess import run_beside  # benchmarks/ is the script's folder


def _snapshots(first_s: float, then_s: float, out: Path) -> None:
    time.sleep(first_s)
    before = tracemalloc.take_snapshot()
    time.sleep(then_s)
    after = tracemalloc.take_snapshot()
    lines = [f"traced (current, peak) bytes: {tracemalloc.get_traced_memory()}"]
    for stat in after.compare_to(before, "traceback")[:12]:
        lines += [str(stat), *stat.traceback.format()[-14:], ""]
    lines.append("==== by file ====")
    lines += [str(stat) for stat in after.compare_to(before, "filename")[:25]]
    (out / "diff.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario")
    p.add_argument("--first-s", type=float, default=150.0)
    p.add_argument("--then-s", type=float, default=240.0)
    p.add_argument("--out", type=Path, default=Path("/tmp/lkload-trace"))
    args, rest = p.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(12)
    return run_beside(
        lambda: _snapshots(args.first_s, args.then_s, args.out), args.scenario, args.out, rest
    )


if __name__ == "__main__":
    sys.exit(main())
