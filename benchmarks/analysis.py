"""Benchmark: analyse and render generated results directories of 10 M and 100 M samples.

    .venv/bin/python benchmarks/analysis.py [--samples N ...] [--dir /tmp/lkload-bench]
                                            [--runs N] [--format parquet|csv|both] [--keep]

Generates each directory once, in a separate process (4 worker shards, 5 tiers plus
recovery, one resource row per source per second; Parquet as the recorder writes it,
generated 10 M rows at a time), then analyses and renders it in a fresh process and prints
that process's wall and CPU time and its own peak memory (ru_maxrss from
getrusage(RUSAGE_SELF) at its end, and VmHWM); then times `lkload report` itself, start
to exit (what a user waits for). 100 M samples are over the analysis's
STREAM_ROWS: analysed streamed. Data sets over 20 M rows are deleted after (--keep keeps
them). Goals: 10 M from Parquet under 3 s and 1 GiB; 100 M under 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
METRICS = (  # metric, share of rows, gamma scale (ms or unit)
    ("data_e2e_ms", 0.55, 12.0),
    ("media_e2e_ms", 0.10, 20.0),
    ("signal_rtt_ms", 0.08, 6.0),
    ("rx_kbps", 0.10, 11.0),
    ("loss_pct", 0.06, 0.05),
    ("jitter_ms", 0.06, 2.0),
    ("api_ms", 0.02, 15.0),
    ("join_ms", 0.02, 80.0),
    ("first_track_ms", 0.01, 90.0),
)
KINDS = ("timeout", "signal", "ice", "disconnect", "api", "media", "internal")
TIERS = ((10, "baseline"), (25, "acceptable"), (50, "target"), (100, "peak"), (200, "stress"))
T0, RAMP, SETTLE, HOLD, REC = 1_780_000_000.0, 40.0, 5.0, 300.0, 60.0
REC_START = T0 + 5 * (RAMP + SETTLE + HOLD)


CHUNK = 10_000_000  # rows generated (and held) at a time


def _dictionary(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names))


def _chunk(rng: np.random.Generator, n: int) -> pa.Table:
    """n rows spread over the whole campaign, sorted by time; strings as dictionaries
    built from integer codes (fast: no Python string per row)."""
    weights = np.array([s for s, _ in TIERS], dtype=float)
    tier_of = rng.choice(np.arange(1, 6), size=n, p=weights / weights.sum()).astype(np.int16)
    names = [m for m, _, _ in METRICS]
    share = np.array([s for _, s, _ in METRICS])
    metric = rng.choice(len(METRICS), size=n, p=share / share.sum())
    scale = np.array([s for _, _, s in METRICS])[metric] * (1 + 0.3 * (tier_of - 1))
    value = np.round(rng.gamma(3.0, scale), 3)
    arrival = np.isin(metric, [7, 8])
    start = T0 + (np.arange(5) * (RAMP + SETTLE + HOLD))[tier_of - 1]
    t = np.where(
        arrival,
        start + rng.uniform(0, RAMP + SETTLE, n),
        start + RAMP + SETTLE + rng.uniform(0, HOLD, n),
    )
    phase = np.where(arrival, 0, 1)  # ramp, hold
    recovery = rng.random(n) < 0.02
    tier_of[recovery] = -1
    t[recovery] = REC_START + rng.uniform(0, REC, int(recovery.sum()))
    phase[recovery] = 2
    ok = rng.random(n) > 0.002 * np.where(tier_of > 3, 5, 1)
    ok |= np.isin(metric, [3, 4, 5, 1])  # observations never fail
    value[~ok] = np.nan
    error = np.where(ok, 0, 1 + rng.integers(0, len(KINDS), n))
    room = rng.integers(0, 1000, n)
    per_track = np.isin(metric, [1, 3, 4, 5, 8])  # media_e2e, rx, loss, jitter, first_track
    pub = np.where(per_track, 1 + room * 10 + rng.integers(0, 2, n), 0)  # two per room
    order = np.argsort(t, kind="stable")
    people = [f"p-{i}" for i in range(10_000)]
    return pa.table(
        {
            "t": pa.array(t[order]),
            "tier": pa.array(tier_of[order]),
            "phase": _dictionary(phase[order], ["ramp", "hold", "recovery"]),
            "worker": _dictionary(order % 4, ["w1", "w2", "w3", "w4"]),
            "room": _dictionary(room[order], [f"room-{i}" for i in range(1000)]),
            "participant": _dictionary(room[order] * 10 + order % 10, people),
            "engine": _dictionary(np.zeros(n), ["aiortc"]),
            "metric": _dictionary(metric[order], names),
            "value": pa.array(value[order], mask=np.isnan(value[order])),
            "ok": pa.array(ok[order]),
            "error": _dictionary(error[order], ["", *KINDS]),
            # per-track metrics name their track
            "publisher": _dictionary(pub[order], ["", *people]),
            "track": _dictionary(pub[order], ["", *(f"TR_{i}" for i in range(10_000))]),
            "detail": _dictionary(np.zeros(n), [""]),
        }
    )


def generate(directory: Path, n: int, fmt: str, seed: int = 1) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from lkload.metrics.shards import PARQUET_SCHEMA, PART_ROWS, SAMPLE_SCHEMA

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "samples").mkdir(exist_ok=True)
    writers: dict[int, pacsv.CSVWriter] = {}
    for k, lo in enumerate(range(0, n, CHUNK)):
        table = _chunk(np.random.default_rng(seed + k), min(CHUNK, n - lo))
        for w in range(4):  # 4 worker shards, rows dealt round-robin
            part = table.take(pa.array(np.arange(w, table.num_rows, 4)))
            if fmt == "csv":
                path = directory / "samples" / f"samples-w{w + 1}.csv"
                if w not in writers:
                    writers[w] = pacsv.CSVWriter(path, SAMPLE_SCHEMA)
                writers[w].write_table(part.cast(SAMPLE_SCHEMA))
            else:  # as the recorder writes it: dictionary strings, zstd, 500,000-row groups
                pq.write_table(
                    part.cast(PARQUET_SCHEMA),
                    directory / "samples" / f"samples-w{w + 1}-{k + 1:05d}.parquet",
                    compression="zstd",
                    row_group_size=PART_ROWS,
                )
        del table
    for writer in writers.values():
        writer.close()
    t0, ramp, settle, hold, rec, rec_start = T0, RAMP, SETTLE, HOLD, REC, REC_START
    end = rec_start + rec
    secs = np.arange(t0, end, 1.0)
    with open(directory / "resources.csv", "w") as fh:
        fh.write("t,source,cpu_pct,rss_mb,mem_pct,threads,fds\n")
        for s in secs:
            cpu, rss = 60 + 20 * np.sin(s / 50), 400 + (s - t0) / 100
            fh.write(f"{s:.3f},server,{cpu:.1f},{rss:.1f},5.0,30,200\n")
            fh.write(f"{s:.3f},generator:w1,{50 + 10 * np.cos(s / 40):.1f},300.0,1.2,10,50\n")
    events = [
        {"t": t0, "event": "campaign_start", "scenario": "bench", "tiers": [s for s, _ in TIERS]}
    ]
    for i, (size, _) in enumerate(TIERS):
        s0 = t0 + i * (ramp + settle + hold)
        events += [
            {"t": s0, "event": "phase", "tier": i + 1, "size": size, "phase": "ramp"},
            {"t": s0 + ramp, "event": "phase", "tier": i + 1, "size": size, "phase": "settle"},
            {
                "t": s0 + ramp + settle,
                "event": "phase",
                "tier": i + 1,
                "size": size,
                "phase": "hold",
            },
            {
                "t": s0 + ramp + settle + hold,
                "event": "tier_end",
                "tier": i + 1,
                "size": size,
                "connected": size,
            },
        ]
    events += [
        {"t": rec_start, "event": "phase", "tier": -1, "size": 10, "phase": "recovery"},
        {"t": end, "event": "tier_end", "tier": -1, "size": 10, "connected": 10},
        {"t": end, "event": "phase", "tier": -1, "size": 10, "phase": "teardown"},
        {"t": end, "event": "campaign_end", "status": "completed"},
    ]
    (directory / "timeline.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    campaign = {
        "id": "bench-20260101-000000",
        "schema_version": 2,
        "status": "completed",
        "started": t0,
        "ended": end,
        "scenario": {
            "name": "bench",
            "hold_s": hold,
            "settle_s": settle,
            "recovery": {"hold_s": rec},
            "tiers": [{"size": s, "role": r} for s, r in TIERS],
        },
        "versions": {"lkload": "bench"},
        "target": {"url": "ws://127.0.0.1:7880", "embedded": True, "server_host": "master"},
        "hosts": {"master": {"hostname": "bench", "cores": 2}},
    }
    (directory / "campaign.json").write_text(json.dumps(campaign))


CHILD = """
import json, os, resource, sys, time
t = time.perf_counter()
from lkload.analysis import analyze
from lkload.report import render_analysis
t_import = time.perf_counter()
import lkload.analysis.load as load
stream_rows = getattr(load, "STREAM_ROWS", None)  # None: an lkload before streaming
a = analyze(sys.argv[1])
t_analyze = time.perf_counter()
r = render_analysis(a, __import__("pathlib").Path(sys.argv[2]))
t_render = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
with open("/proc/self/status") as fh:
    hwm = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
print(json.dumps({
    "samples": a.sample_count, "overall": r.overall,
    "how": "streamed" if stream_rows is not None and a.sample_count > stream_rows
        else "in memory",
    "import_s": t_import - t, "analyze_s": t_analyze - t_import, "render_s": t_render - t_analyze,
    "cpu_s": usage.ru_utime + usage.ru_stime,
    "maxrss_mb": usage.ru_maxrss / 1024, "vmhwm_mb": hwm / 1024,
}))
"""


def measure(results: Path, out: Path) -> dict:
    """One analysis + render in a fresh process; its own peak RSS and CPU time."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(results), str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - t
    # what a user waits for: the command itself, start to exit (0 or 1: the verdict)
    t = time.perf_counter()
    cli = subprocess.run(
        [sys.executable, "-m", "lkload.cli.main", "report", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if cli.returncode not in (0, 1):
        raise RuntimeError(f"lkload report exited {cli.returncode}: {cli.stderr.strip()}")
    figures["report_wall_s"] = time.perf_counter() - t
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[10_000_000, 100_000_000])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/lkload-bench"))
    ap.add_argument("--runs", type=int, default=1, help="measure this many times (default 1)")
    ap.add_argument(
        "--format",
        choices=("parquet", "csv", "both"),
        default="parquet",
        help="samples written as (both: each measured in turn, same data; default parquet)",
    )
    ap.add_argument(
        "--keep", action="store_true", help=f"keep data sets over {KEEP_ROWS:,} rows (deleted)"
    )
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    formats = ("csv", "parquet") if args.format == "both" else (args.format,)
    if args.generate_only:
        n = args.samples[0]
        generate(args.dir / f"results-{n}-{args.format}", n, args.format)
        return 0
    for n in args.samples:
        for fmt in formats:
            results = measure_format(args, n, fmt)
            if n > KEEP_ROWS and not args.keep:
                shutil.rmtree(results)
    return 0


KEEP_ROWS = 20_000_000


def measure_format(args: argparse.Namespace, samples: int, fmt: str) -> Path:
    results = args.dir / f"results-{samples}-{fmt}"
    if not (results / "campaign.json").exists():
        # in its own process: this one stays small, so the measured child's peak RSS
        # (which on Linux starts from its parent's at spawn) is its own
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate-only",
                "--samples",
                str(samples),
                "--dir",
                str(args.dir),
                "--format",
                fmt,
            ],
            check=True,
        )
        print(f"generated {samples:,} samples in {time.perf_counter() - t:.1f} s: {results}")
    for run in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        f = measure(results, args.dir / "report")
        print(
            f"{fmt} run {run}: samples {f['samples']:,} ({f['how']}): imports "
            f"{f['import_s']:.2f} s, analyze {f['analyze_s']:.2f} s, render "
            f"{f['render_s']:.2f} s; process wall {f['wall_s']:.2f} s, CPU {f['cpu_s']:.2f} s; "
            f"`lkload report` wall {f['report_wall_s']:.2f} s; "
            f"peak RSS {f['maxrss_mb']:.0f} MB (ru_maxrss; VmHWM {f['vmhwm_mb']:.0f} MB); "
            f"load average before {load:.2f}; verdict {f['overall']}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    sys.exit(main())
