"""Soak: what a long hold at constant load shows about memory and lost samples.

    scripts/netns -- .venv/bin/python benchmarks/soak.py [--scenario scenarios/soak.yaml]
    .venv/bin/python benchmarks/soak.py --results results/<campaign-id>   # measure only

Runs the scenario (default scenarios/soak.yaml: one tier held 30 minutes on the embedded
server) unless --results names a finished campaign, then prints as JSON:
- the server's RSS slope over the hold, as the leak check judges it (analysis/leak.py);
- the generator's own RSS slope, fitted the same way (same warm-up skipped);
- samples lost: Locust's count of what the participants recorded (locust_stats.csv, every
  sample is fired to Locust as one request) against the rows on disk.
tests/test_soak.py runs the same with a 3-minute hold.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from lkload.analysis.leak import window_slope
from lkload.analysis.load import load_results
from lkload.analysis.windows import tier_windows
from lkload.metrics.shards import read_journal, sample_files

ROOT = Path(__file__).resolve().parent.parent


def _slope(resources: Any, source: str, start: float, end: float) -> dict[str, Any]:
    rows = resources[resources["source"].astype(str) == source]
    t = rows["t"].to_numpy(dtype=np.float64)
    rss = rows["rss_mb"].to_numpy(dtype=np.float64)
    inside = (t >= start) & (t <= end)
    s = window_slope(1, 0, start, end, t[inside], rss[inside])
    return {
        "source": source,
        "judged": s.judged,
        "growing": s.growing,
        "slope_mb_per_min": s.slope_mb_per_min,
        "growth_mb": s.growth_mb,
        "projected_mb_per_10_min": s.projected_mb,
        "rss_mb_mean": s.rss_mb_mean,
        "r2": s.r2,
        "points": s.points,
        "note": s.note,
    }


def recorded_vs_on_disk(results: Path) -> tuple[int, int]:
    """(samples Locust counted, sample rows on disk)."""
    with open(results / "locust_stats.csv", newline="") as fh:
        recorded = sum(
            int(r["Request Count"]) for r in csv.DictReader(fh) if r["Name"] != "Aggregated"
        )
    on_disk = 0
    for shard in sample_files(results / "samples"):  # CSV, Parquet, unconverted journals
        if shard.suffix == ".parquet":
            on_disk += pq.ParquetFile(shard).metadata.num_rows
        elif shard.suffix == ".csv":
            with open(shard, newline="") as fh:
                on_disk += sum(1 for _ in csv.DictReader(fh))
        else:
            on_disk += sum(b.num_rows for b in read_journal(shard)[0])
    return recorded, on_disk


def measure(results: Path) -> dict[str, Any]:
    data = load_results(results)
    window = next(w for w in tier_windows(data).tiers if w.hold_start is not None)
    assert window.hold_end is not None, "the hold never ended"
    start, end = window.hold_start, window.hold_end
    generators = sorted(
        {s for s in data.resources["source"].astype(str) if s.startswith("generator:")}
    )
    recorded, on_disk = recorded_vs_on_disk(results)
    return {
        "results": str(results),
        "status": data.status,
        "hold_s": end - start,
        "size": window.size,
        "server": _slope(data.resources, "server", start, end),
        "generators": [_slope(data.resources, g, start, end) for g in generators],
        "samples_recorded": recorded,
        "samples_on_disk": on_disk,
        "samples_lost": recorded - on_disk,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(ROOT / "scenarios" / "soak.yaml"))
    p.add_argument("--results", type=Path, help="measure this finished campaign, run nothing")
    p.add_argument("--out", type=Path, default=Path("/tmp/lkload-soak"))
    args = p.parse_args()
    results = args.results
    if results is None:
        before = set((args.out / "results").glob("*"))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lkload.cli",
                "run",
                args.scenario,
                "--results",
                str(args.out / "results"),
                "--reports",
                str(args.out / "reports"),
                "--no-progress",
            ],
            cwd=ROOT,
            env=os.environ,
            check=False,  # a FAIL verdict still leaves results to measure
        )
        (results,) = set((args.out / "results").glob("*")) - before
    print(json.dumps(measure(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
