"""Locust's per-second counters stay bounded however long a campaign runs
(engine/locust_stats.py), and what lkload reads from Locust does not change."""

from __future__ import annotations

import types

import locust.stats
import pytest
from locust.stats import RequestStats

from lkload.engine.locust_stats import KEEP_S, TRIM_EVERY, trim_per_second

HOUR_S = 3600
METRICS = ("join_ms", "data_e2e_ms", "signal_rtt_ms")
PER_SECOND = 5  # requests per metric per second


def _per_second_sizes(stats: RequestStats) -> list[int]:
    return [
        len(per_sec)
        for entry in [stats.total, *stats.entries.values()]
        for per_sec in (entry.num_reqs_per_sec, entry.num_fail_per_sec)
    ]


def test_an_hour_of_requests_keeps_a_minute_of_per_second_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = types.SimpleNamespace(now=1_800_000_000.0)
    monkeypatch.setattr(locust.stats, "time", types.SimpleNamespace(time=lambda: clock.now))
    trimmed, untouched = RequestStats(), RequestStats()
    trim_every_s = TRIM_EVERY // 2  # the campaign loop turns twice a second
    largest = 0
    for second in range(HOUR_S):
        for i in range(PER_SECOND):
            clock.now = 1_800_000_000.0 + second + i / PER_SECOND
            for stats in (trimmed, untouched):
                for metric in METRICS:
                    stats.log_request("aiortc", metric, 10 + i, 0)
                    if second % 10 == 0 and i == 0:
                        stats.log_error("aiortc", metric, "timeout")
        if second % trim_every_s == 0:
            trim_per_second(trimmed, clock.now)
        largest = max(largest, *_per_second_sizes(trimmed))
    # Without the trim Locust keeps one count per second of the run ...
    assert len(untouched.total.num_reqs_per_sec) == HOUR_S
    assert len(untouched.total.num_fail_per_sec) == HOUR_S // 10
    # ... with it, at most the window plus the seconds between two trims.
    assert 0 < largest <= KEEP_S + trim_every_s + 1, largest
    # Nothing lkload or Locust reads changed: counts, totals, the current rates.
    for a, b in zip(
        [trimmed.total, *trimmed.entries.values()],
        [untouched.total, *untouched.entries.values()],
        strict=True,
    ):
        metrics = len(METRICS) if a is trimmed.total else 1
        assert a.num_requests == b.num_requests == HOUR_S * PER_SECOND * metrics
        assert a.num_failures == b.num_failures
        assert a.current_rps == b.current_rps > 0
        assert a.current_fail_per_sec == b.current_fail_per_sec
        assert a.total_rps == b.total_rps
        assert a.get_response_time_percentile(0.95) == b.get_response_time_percentile(0.95)
