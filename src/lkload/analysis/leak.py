"""Memory-leak check: the server's RSS during the holds and after the load drops.

A server that has just taken on new participants grows its memory for a while (buffers,
caches, the Go heap finding its size) and then levels off; a leak keeps growing at a
constant load, and keeps what it took when the load goes away. So:

- A hold is judged only when it lasts at least `MIN_HOLD_S` (60 s): a 20 s hold right
  after 25 joins shows nothing but warm-up. Shorter holds are not judged.
- The first third of each judged hold (at least `WARMUP_MIN_S`) is warm-up and skipped;
  a least-squares line goes through the rest of its 1 s RSS samples.
- A hold *grows* only when all of these hold: the slope projected over 10 minutes exceeds
  10 % of the hold's mean RSS (and 10 MB); the line fits (R² ≥ 0.5); the slope stands out
  of the noise (slope / standard error ≥ 3); and the last half of the window still rises
  (its own slope ≥ a quarter of the whole window's), so one step that levelled off is not
  a trend.
- Recovery (the phase after the top tier, back at tier 1's size) is the strongest evidence,
  because it compares RSS at equal participant counts: the RSS level of the recovery's
  last half against tier 1's hold (each level = median of the window's last half). The
  memory was *released* when the recovery level is within max(10 MB, 10 %) of tier 1's, or
  gave back at least half of the rise to the highest hold level; otherwise it was *kept*.
  A recovery of at least 60 s is also judged for growth like a hold.

Verdict:
- FAIL: RSS kept growing after the load dropped (recovery grows); or memory was kept at
  equal participant count *and* at least one hold grew; or, without a usable recovery,
  two or more holds grew (or the only judged hold did).
- WARN: memory kept at equal participant count with no growth during holds (the Go runtime
  may hold freed memory for minutes: rerun with a longer recovery to tell); any hold
  grew but the memory was released afterwards (load-bound, not a leak, but not stable); or
  one of several holds grew.
- PASS: no judged hold grew and the memory (if a recovery ran) was released.
- NOT MEASURED: no server RSS samples, or every hold too short and no usable recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lkload.analysis.verdict_types import Status

MIN_HOLD_S = 60.0  # shorter holds cannot tell warm-up from a leak
WARMUP_FRACTION = 1 / 3  # of each judged window, skipped before fitting
WARMUP_MIN_S = 20.0
MIN_POINTS = 10  # RSS samples in the fitted window
HORIZON_S = 600.0  # growth is projected over 10 minutes
GROWTH_FRACTION = 0.10  # of the mean RSS, over the horizon
GROWTH_MIN_MB = 10.0
MIN_R2 = 0.5
MIN_T = 3.0  # slope / its standard error
TAIL_FRACTION = 0.25  # the last half's slope, relative to the whole window's
MIN_RECOVERY_S = 30.0  # a recovery shorter than this gives no level to compare
RELEASE_MB = 10.0
RELEASE_FRACTION = 0.10  # of tier 1's level
RELEASE_SHARE = 0.5  # of the rise above tier 1, given back
LEVEL_MIN_POINTS = 3


@dataclass
class HoldSlope:
    """One window's RSS trend: a tier's hold, or the recovery (tier -1)."""

    tier: int  # -1: the recovery phase
    size: int
    duration_s: float
    judged: bool
    note: str  # why not judged, or what decided it
    warmup_s: float = 0.0  # skipped at the start of the window
    points: int = 0  # samples in the fitted window
    slope_mb_per_min: float | None = None
    growth_mb: float | None = None  # over the fitted window
    projected_mb: float | None = None  # over HORIZON_S at this slope
    rss_mb_mean: float | None = None
    r2: float | None = None
    t_stat: float | None = None
    tail_slope_mb_per_min: float | None = None
    growing: bool = False

    @property
    def label(self) -> str:
        return "recovery" if self.tier == -1 else f"tier {self.tier}"


@dataclass
class Release:
    """RSS at equal participant counts: tier 1's hold against the recovery after the top tier."""

    size: int
    tier1_mb: float  # median of tier 1's hold, last half
    peak_mb: float  # highest hold level
    peak_tier: int
    recovery_mb: float  # median of the recovery's last half
    released: bool

    @property
    def retained_mb(self) -> float:
        return self.recovery_mb - self.tier1_mb

    @property
    def rise_mb(self) -> float:
        return self.peak_mb - self.tier1_mb

    def describe(self) -> str:
        verb = "went back to" if self.released else "stayed at"
        return (
            f"at {self.size} participants RSS {verb} {self.recovery_mb:.0f} MB after the top "
            f"tier (tier 1: {self.tier1_mb:.0f} MB, highest {self.peak_mb:.0f} MB in tier "
            f"{self.peak_tier}; {self.retained_mb:+.0f} MB kept)"
        )


@dataclass
class LeakCheck:
    status: Status
    evidence: str
    holds: list[HoldSlope] = field(default_factory=list)  # every hold, judged or not
    recovery: HoldSlope | None = None
    release: Release | None = None

    @property
    def judged(self) -> list[HoldSlope]:
        return [h for h in self.holds if h.judged]


def _fit(t: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope (per second), R² and slope / standard error."""
    x = t - t.mean()
    sxx = float(np.dot(x, x))
    if sxx <= 0:
        return 0.0, 0.0, 0.0
    dy = y - y.mean()
    slope = float(np.dot(x, dy)) / sxx
    resid = dy - slope * x
    sse = float(np.dot(resid, resid))
    sst = float(np.dot(dy, dy))
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    n = t.size
    se = np.sqrt(sse / (n - 2) / sxx) if n > 2 else 0.0
    if se > 0:
        return slope, r2, float(slope / se)
    return slope, r2, float("inf") if slope > 0 else 0.0  # an exact line: no noise at all


def window_slope(
    tier: int, size: int, start: float, end: float, t: np.ndarray, rss: np.ndarray
) -> HoldSlope:
    """The trend of one window (`t`, `rss`: the server's samples within it)."""
    duration = max(0.0, end - start)
    if duration < MIN_HOLD_S:
        return HoldSlope(
            tier, size, duration, False, f"{duration:.0f} s < {MIN_HOLD_S:.0f} s: too short"
        )
    warmup = max(WARMUP_MIN_S, duration * WARMUP_FRACTION)
    sel = t >= start + warmup
    t, rss = t[sel], rss[sel]
    if t.size < MIN_POINTS:
        return HoldSlope(
            tier,
            size,
            duration,
            False,
            f"{t.size} RSS samples after warm-up < {MIN_POINTS}",
            warmup_s=warmup,
            points=int(t.size),
        )
    slope, r2, t_stat = _fit(t, rss)
    half = t >= t[0] + (t[-1] - t[0]) / 2
    tail, _, _ = _fit(t[half], rss[half]) if np.count_nonzero(half) >= 3 else (slope, 0, 0)
    mean = float(rss.mean())
    projected = slope * HORIZON_S
    threshold = max(GROWTH_MIN_MB, GROWTH_FRACTION * mean)
    reasons = []
    if projected <= threshold:
        reasons.append(f"projected {projected:+.0f} MB/10 min ≤ {threshold:.0f} MB")
    if r2 < MIN_R2:
        reasons.append(f"R² {r2:.2f} < {MIN_R2:g}")
    if t_stat < MIN_T:
        reasons.append(f"within noise (t {t_stat:.1f} < {MIN_T:g})")
    if slope > 0 and tail < TAIL_FRACTION * slope:
        reasons.append("levelled off in its last half")
    growing = not reasons
    note = (
        f"grows: {projected:+.0f} MB/10 min > {threshold:.0f} MB, R² {r2:.2f}"
        if growing
        else "stable: " + "; ".join(reasons)
    )
    return HoldSlope(
        tier=tier,
        size=size,
        duration_s=duration,
        judged=True,
        note=note,
        warmup_s=warmup,
        points=int(t.size),
        slope_mb_per_min=slope * 60.0,
        growth_mb=slope * float(t[-1] - t[0]),
        projected_mb=projected,
        rss_mb_mean=mean,
        r2=r2,
        t_stat=t_stat,
        tail_slope_mb_per_min=tail * 60.0,
        growing=growing,
    )


def _level(t: np.ndarray, rss: np.ndarray, start: float, end: float) -> float | None:
    """Median RSS over the last half of a window."""
    sel = (t >= start + (end - start) / 2) & (t < end)
    return float(np.median(rss[sel])) if np.count_nonzero(sel) >= LEVEL_MIN_POINTS else None


def _release(
    t: np.ndarray,
    rss: np.ndarray,
    holds: list[tuple[int, int, float | None, float | None]],
    recovery: tuple[float | None, float | None, int] | None,
) -> Release | None:
    if recovery is None:
        return None
    r_start, r_end, size = recovery
    if r_start is None or r_end is None or r_end - r_start < MIN_RECOVERY_S:
        return None
    levels = [
        (tier, lvl)
        for tier, _, start, end in holds
        if start is not None and end is not None
        for lvl in [_level(t, rss, start, end)]
        if lvl is not None
    ]
    first = next((lvl for tier, lvl in levels if tier == 1), None)
    rec = _level(t, rss, r_start, r_end)
    if first is None or rec is None:
        return None
    peak_tier, peak = max(levels, key=lambda x: x[1])
    retained = rec - first
    rise = peak - first
    released = retained <= max(RELEASE_MB, RELEASE_FRACTION * first) or (
        rise > 0 and retained <= (1 - RELEASE_SHARE) * rise
    )
    return Release(size, first, peak, peak_tier, rec, released)


def _too_short(holds: list[HoldSlope]) -> str:
    durations = sorted({round(h.duration_s) for h in holds})
    if not durations:
        return "no hold ran"
    what = (
        f"holds of {durations[0]} s"
        if len(durations) == 1
        else f"holds of at most {durations[-1]} s"
    )
    return f"{what} are too short to judge a leak (need ≥ {MIN_HOLD_S:.0f} s)"


def _steepest(judged: list[HoldSlope]) -> str:
    w = max(judged, key=lambda s: s.slope_mb_per_min or 0.0)
    assert w.slope_mb_per_min is not None and w.projected_mb is not None
    share = w.projected_mb / w.rss_mb_mean * 100 if w.rss_mb_mean else 0.0
    return (
        f"steepest {w.slope_mb_per_min:+.1f} MB/min in {w.label} after {w.warmup_s:.0f} s of "
        f"warm-up (projected {w.projected_mb:+.0f} MB over 10 min, {share:.0f} % of mean "
        f"{w.rss_mb_mean:.0f} MB, R² {w.r2:.2f})"
    )


def leak_check(
    resources: pd.DataFrame,
    holds: list[tuple[int, int, float | None, float | None]],
    recovery: tuple[float | None, float | None, int] | None = None,
) -> LeakCheck:
    """`holds`: (tier, size, start, end) per tier; `recovery`: (start, end, size) or None."""
    server = (
        resources[resources["source"].astype(str) == "server"] if not resources.empty else resources
    )
    if server.empty:
        return LeakCheck(Status.NOT_MEASURED, "no server RSS samples")
    t_all = server["t"].to_numpy(dtype=float)
    rss_all = server["rss_mb"].to_numpy(dtype=float)
    ok = np.isfinite(t_all) & np.isfinite(rss_all)
    order = np.argsort(t_all[ok], kind="stable")
    t_all, rss_all = t_all[ok][order], rss_all[ok][order]

    def slope_of(tier: int, size: int, start: float, end: float) -> HoldSlope:
        sel = (t_all >= start) & (t_all < end)  # the sample at `end` belongs to what follows
        return window_slope(tier, size, start, end, t_all[sel], rss_all[sel])

    slopes = [
        slope_of(tier, size, start, end)
        for tier, size, start, end in holds
        if start is not None and end is not None
    ]
    rec_slope = None
    if recovery is not None and recovery[0] is not None and recovery[1] is not None:
        rec_slope = slope_of(-1, recovery[2], recovery[0], recovery[1])
    release = _release(t_all, rss_all, holds, recovery)
    judged = [s for s in slopes if s.judged]
    growing = [s for s in judged if s.growing]
    rec_growing = rec_slope is not None and rec_slope.judged and rec_slope.growing

    def done(status: Status, evidence: str) -> LeakCheck:
        return LeakCheck(status, evidence, slopes, rec_slope, release)

    if not judged and release is None and not (rec_slope and rec_slope.judged):
        if slopes and all(s.duration_s >= MIN_HOLD_S for s in slopes):
            return done(
                Status.NOT_MEASURED,
                f"fewer than {MIN_POINTS} server RSS samples after warm-up in every hold",
            )
        return done(Status.NOT_MEASURED, _too_short(slopes))

    parts = []
    if judged:
        tiers = ", ".join(str(s.tier) for s in growing)
        if growing:
            parts.append(
                f"RSS grew steadily during {len(growing)} of {len(judged)} judged holds "
                f"(tier{'s' if len(growing) > 1 else ''} {tiers})"
            )
        else:
            parts.append(f"no judged hold grew ({len(judged)} judged)")
        parts.append(_steepest(judged))
    else:
        parts.append(_too_short(slopes))
    if release is not None:
        parts.append(release.describe())
    if rec_slope is not None and rec_slope.judged and (rec_growing or not judged):
        assert rec_slope.slope_mb_per_min is not None
        parts.append(
            f"RSS kept growing after the load dropped ({rec_slope.slope_mb_per_min:+.1f} MB/min "
            "in the recovery)"
            if rec_growing
            else f"RSS stable in the recovery ({rec_slope.slope_mb_per_min:+.1f} MB/min)"
        )
    evidence = "; ".join(parts)

    kept = release is not None and not release.released
    if rec_growing and (release is None or kept):
        return done(Status.FAIL, evidence)
    if kept and growing:
        return done(Status.FAIL, evidence)
    if kept:
        return done(
            Status.WARN,
            evidence + " — not released yet, though no hold grew; the Go runtime may keep "
            "freed memory for minutes: a longer recovery tells",
        )
    if release is not None:  # released
        if growing:  # even one hold's steady growth is no "memory usage stable over time"
            return done(
                Status.WARN,
                evidence + " — memory grew with time at constant load but was released: "
                "load-bound, not a leak",
            )
        return done(Status.PASS, evidence)
    if growing and (len(growing) >= 2 or len(growing) == len(judged)):
        return done(Status.FAIL, evidence)
    if growing:
        return done(Status.WARN, evidence)
    return done(Status.PASS, evidence)
