"""Memory-leak check: the server's RSS slope during each hold.

Within a hold the load is constant, so a healthy server's RSS levels off. The slope of a
least-squares line through the hold's 1 s RSS samples, times the hold's length, is the
growth over the hold; a hold "grows" when that exceeds both 5 MB and 2 % of its mean
RSS. Verdict: PASS when no hold grows, WARN when one does (warm-up, caches), FAIL when
two or more do, NOT MEASURED without server samples (at least 5 per hold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lkload.analysis.verdict_types import Status

MIN_POINTS = 5
GROWTH_MB = 5.0
GROWTH_FRACTION = 0.02


@dataclass
class HoldSlope:
    tier: int
    points: int
    slope_mb_per_min: float
    growth_mb: float
    rss_mb_mean: float
    growing: bool


@dataclass
class LeakCheck:
    status: Status
    evidence: str
    holds: list[HoldSlope] = field(default_factory=list)


def hold_slope(tier: int, t: np.ndarray, rss: np.ndarray) -> HoldSlope | None:
    ok = np.isfinite(t) & np.isfinite(rss)
    t, rss = t[ok], rss[ok]
    if t.size < MIN_POINTS or float(t.max() - t.min()) <= 0:
        return None
    slope, _ = np.polyfit(t - t[0], rss, 1)  # MB per second
    duration = float(t.max() - t.min())
    growth = float(slope) * duration
    mean = float(rss.mean())
    return HoldSlope(
        tier=tier,
        points=int(t.size),
        slope_mb_per_min=float(slope) * 60.0,
        growth_mb=growth,
        rss_mb_mean=mean,
        growing=growth > max(GROWTH_MB, GROWTH_FRACTION * mean),
    )


def leak_check(
    resources: pd.DataFrame, holds: list[tuple[int, float | None, float | None]]
) -> LeakCheck:
    if resources.empty:
        return LeakCheck(Status.NOT_MEASURED, "no server resource samples")
    server = resources[resources["source"].astype(str) == "server"]
    t_all = server["t"].to_numpy(dtype=float)
    rss_all = server["rss_mb"].to_numpy(dtype=float)
    slopes = []
    for tier, start, end in holds:
        if start is None or end is None:
            continue
        sel = (t_all >= start) & (t_all <= end)
        s = hold_slope(tier, t_all[sel], rss_all[sel])
        if s is not None:
            slopes.append(s)
    if not slopes:
        return LeakCheck(
            Status.NOT_MEASURED, f"fewer than {MIN_POINTS} server RSS samples in every hold"
        )
    growing = [s for s in slopes if s.growing]
    worst = max(slopes, key=lambda s: s.slope_mb_per_min)
    desc = (
        f"steepest RSS slope {worst.slope_mb_per_min:+.1f} MB/min in tier {worst.tier} "
        f"({worst.growth_mb:+.1f} MB over the hold, mean {worst.rss_mb_mean:.0f} MB)"
    )
    if not growing:
        return LeakCheck(Status.PASS, f"no hold grew; {desc}", slopes)
    tiers = ", ".join(str(s.tier) for s in growing)
    if len(growing) == 1:
        return LeakCheck(
            Status.WARN, f"RSS grew during 1 of {len(slopes)} holds (tier {tiers}); {desc}", slopes
        )
    return LeakCheck(
        Status.FAIL,
        f"RSS grew during {len(growing)} of {len(slopes)} holds (tiers {tiers}); {desc}",
        slopes,
    )
