"""A generator starved of CPU reads LOW CPU: its event loop's lateness flags the tier.

Synthetic resource rows whose answer the test knows: 60 s of one generator, its CPU and
the largest lateness of its loop's probe timer per second (`loop_lag_ms`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lkload.analysis.resources import LOOP_LAG_LIMIT_MS, tier_resources
from lkload.metrics.monitor import ResourceMonitor
from lkload.metrics.schema import RESOURCE_COLUMNS, ResourceSample

GEN_LIMIT = 80.0


def _rows(cpu: np.ndarray, lag: np.ndarray | None) -> pd.DataFrame:
    n = len(cpu)
    df = pd.DataFrame(
        {
            "t": np.arange(n, dtype=float) + 0.3,
            "source": ["generator:local"] * n,
            "cpu_pct": cpu,
            "rss_mb": np.full(n, 150.0),
            "mem_pct": np.full(n, 1.0),
            "threads": np.full(n, 9),
            "fds": np.full(n, 40),
            "loop_lag_ms": lag if lag is not None else np.full(n, np.nan),
        }
    )
    assert list(df.columns) == list(RESOURCE_COLUMNS)
    return df


def _judge(cpu: np.ndarray, lag: np.ndarray | None):  # type: ignore[no-untyped-def]
    res = tier_resources(_rows(cpu, lag), 0.0, 60.0, 2, GEN_LIMIT)
    return res, res.generators["local"]


def test_a_starved_generator_with_low_cpu_is_untrustworthy() -> None:
    # A cgroup quota of 5 % of a core: CPU reads 5 %, the loop fires ~90 ms late.
    res, gen = _judge(np.full(60, 5.0), np.full(60, 92.0))
    assert gen.cpu_p90 < GEN_LIMIT and gen.starved and not gen.busy and gen.saturated
    assert res.untrusted_causes == ["generator starved of CPU"]
    assert "event loop late by P90 92 ms > 50 ms" in res.untrusted_reason


def test_a_healthy_loop_with_rare_spikes_is_trusted() -> None:
    # ~1 ms lateness, a 300 ms pause (GC, a burst of joins) in 5 of 60 seconds: P90 ~1 ms.
    lag = np.full(60, 1.2)
    lag[::12] = 300.0
    res, gen = _judge(np.full(60, 30.0), lag)
    assert gen.loop_lag_p90 is not None and gen.loop_lag_p90 < LOOP_LAG_LIMIT_MS
    assert not gen.saturated and res.untrusted_causes == []


def test_lateness_just_over_the_limit_in_more_than_a_tenth_of_the_hold() -> None:
    lag = np.full(60, 1.0)
    lag[:8] = LOOP_LAG_LIMIT_MS + 10  # 8 of 60 s > 10 %: P90 is over the limit
    _, gen = _judge(np.full(60, 30.0), lag)
    assert gen.starved
    lag[:8] = LOOP_LAG_LIMIT_MS - 10
    _, gen = _judge(np.full(60, 30.0), lag)
    assert not gen.starved


def test_busy_and_starved_are_told_apart() -> None:
    res, gen = _judge(np.full(60, 95.0), np.full(60, 2.0))
    assert gen.busy and not gen.starved
    assert res.untrusted_causes == ["generator saturated"]


def test_results_without_loop_lag_are_judged_on_cpu_only() -> None:
    res, gen = _judge(np.full(60, 5.0), None)
    assert gen.loop_lag_p90 is None and not gen.saturated and res.untrusted_causes == []


def test_monitor_tells_of_a_starved_generator_after_three_late_seconds() -> None:
    """The live signal (timeline `generator_saturated`, progress line) too: three seconds
    in a row with the loop late, whatever the CPU reads; a healthy second resets it."""
    told: list[ResourceSample] = []
    mon = ResourceMonitor(emit=lambda r: None, generator_ceiling_pct=80.0, on_saturated=told.append)
    late = ResourceSample(0.0, "generator:local", 3.0, 100.0, 1.0, loop_lag_ms=400.0)
    fine = ResourceSample(0.0, "generator:local", 3.0, 100.0, 1.0, loop_lag_ms=1.0)
    for s in (late, late, fine, late, late):
        mon._check_saturation(s)
    assert told == []
    mon._check_saturation(late)
    assert told == [late]
