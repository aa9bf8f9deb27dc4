"""Locust's statistics fed from merged aggregates (metrics/live.py), never from rows.

Locust keeps, per (name, method), counts, failures, per-second counts and a dict of
response times rounded to ~2 significant digits (locust.stats.bucket_response_time). Each
flush turns the (engine, metric) aggregates merged since the last one into such an entry
and adds it with Locust's own `extend` (what its master does with workers' reports), so
Locust's table, CSV and web UI show every sample: name = metric, type = engine, failures
by kind in its errors. As before, a failure counts as a request with response time 0, and
so does an ok row without a value. Locust's percentiles carry its own rounding on top of
the histogram's 1 %.

Per-second counters are kept to a window: every StatsEntry counts requests and failures per
whole second (`num_reqs_per_sec`, `num_fail_per_sec`) and never forgets one: a dictionary
entry per metric per second for as long as the campaign runs (+0.03 MB/min in the soak, ~15
MB in an 8-hour one). Locust reads only the last ~12 s of them (`current_rps`,
`current_fail_per_sec`: its web UI and headless summary); the totals lkload writes to
locust_stats.csv come from running counts. So the seconds older than KEEP_S are dropped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from functools import cache

import numpy as np
from locust.stats import RequestStats, StatsEntry, StatsError, bucket_response_time

from lkload.metrics.live import VALUES, Histogram


@cache
def _locust_keys() -> np.ndarray:
    """Locust's rounded response time of each bucket's representative."""
    return np.array([bucket_response_time(v) for v in VALUES.tolist()], dtype=np.int64)


def feed(stats: RequestStats, merged: dict[tuple[str, str], Histogram]) -> None:
    """Add aggregates merged since the last call to Locust's statistics."""
    now = time.time()
    second = int(now)
    keys = _locust_keys()
    for (engine, metric), h in merged.items():
        failures = h.failures
        requests = h.ok + failures
        if requests == 0:
            continue
        delta = StatsEntry(stats, metric, engine)
        delta.num_requests = requests
        delta.num_failures = failures
        times: defaultdict[int, int] = defaultdict(int)
        nz = np.flatnonzero(h.counts)
        for k, c in zip(keys[nz].tolist(), h.counts[nz].tolist(), strict=True):
            times[k] += c
        without = requests - h.measured  # failures and ok rows without a value: 0
        if without:
            times[0] += without
        delta.response_times = times
        delta.total_response_time = h.total  # type: ignore[assignment]  # Locust: int ms
        lo = h.min if h.min is not None else 0.0
        delta.min_response_time = min(lo, 0.0) if without else lo  # type: ignore[assignment]
        delta.max_response_time = max(h.max or 0.0, 0.0)  # type: ignore[assignment]
        delta.num_reqs_per_sec = defaultdict(int, {second: requests})
        if failures:
            delta.num_fail_per_sec = defaultdict(int, {second: failures})
        delta.last_request_timestamp = now
        delta.start_time = now
        stats.entries[(metric, engine)].extend(delta)
        stats.total.extend(delta)
        for kind, n in h.failed.items():
            key = StatsError.create_key(engine, metric, kind)
            error = stats.errors.get(key)
            if error is None:
                error = stats.errors[key] = StatsError(engine, metric, kind, first_seen=now)
            error.occurrences += n
            error.last_seen = now


KEEP_S = 60  # seconds of per-second counts kept: Locust's window is 12 s
TRIM_EVERY = 20  # campaign loop turns (0.5 s each) between trims


def trim_per_second(stats: RequestStats, now: float, keep_s: int = KEEP_S) -> int:
    """Drop per-second counts older than `keep_s` before `now` (unix s); how many went."""
    oldest = int(now) - keep_s
    dropped = 0
    for entry in [stats.total, *stats.entries.values()]:
        for per_sec in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
            old = [t for t in per_sec if t < oldest]
            for t in old:
                del per_sec[t]
            dropped += len(old)
    return dropped


__all__ = ["KEEP_S", "TRIM_EVERY", "feed", "trim_per_second"]
