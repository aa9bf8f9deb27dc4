"""Locust's per-second request counters, kept to a window.

Every Locust StatsEntry counts requests and failures per whole second
(`num_reqs_per_sec`, `num_fail_per_sec`) and never forgets one: a dictionary entry per
metric per second for as long as the campaign runs (+0.03 MB/min in the soak, ~15 MB in
an 8-hour one). Locust reads only the last ~12 s of them (`current_rps`,
`current_fail_per_sec`: its web UI and headless summary); the totals lkload writes to
locust_stats.csv come from running counts. So the seconds older than KEEP_S are dropped.
"""

from __future__ import annotations

from locust.stats import RequestStats

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
