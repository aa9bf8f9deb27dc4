"""Per-tier statistics from the raw samples: latency percentiles, errors, throughput.

Which rows count for a tier (docs/results-format.md): arrival metrics (`join_ms`,
`first_track_ms`) count for the tier whose participants arrived — rows of that tier in its
ramp or settle, and the slow ones that finished in its hold; every other metric counts
only in the tier's hold. Rows of other metrics during ramp and settle are shown
separately (`ramp_metrics`) and never mixed into the judged numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lkload.analysis.percentiles import Distribution, grouped_distributions
from lkload.analysis.windows import TierWindow
from lkload.metrics.schema import ARRIVAL_METRICS, ATTEMPT_METRICS


@dataclass
class MetricStats(Distribution):
    attempts: int = 0
    failures: int = 0


@dataclass
class Throughput:
    joins_per_s: float | None = None  # successful joins per second of ramp and settle
    data_msgs_per_s: float | None = None  # data messages received per second of hold
    media_kbps: float | None = None  # media received by all subscribers, per second of hold


@dataclass
class TierStats:
    tier: int
    size: int
    role: str
    hold_start: float | None
    hold_end: float | None
    hold_s: float
    arrival_s: float
    ended: bool
    connected: int | None
    metrics: dict[str, MetricStats] = field(default_factory=dict)
    ramp_metrics: dict[str, MetricStats] = field(default_factory=dict)
    attempts: int = 0
    failures: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    throughput: Throughput = field(default_factory=Throughput)

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None

    @property
    def has_data(self) -> bool:
        return self.attempts > 0 or any(m.count for m in self.metrics.values())


class SampleArrays:
    """The sample columns as numpy arrays (views of the DataFrame's, no copies) plus
    category codes and the few row masks every stage needs, built once."""

    def __init__(self, samples: pd.DataFrame) -> None:
        self.n = len(samples)
        self.t = samples["t"].to_numpy(dtype=np.float64)
        self.tier = samples["tier"].to_numpy()  # int16
        self.value = samples["value"].to_numpy(dtype=np.float64)
        self.ok = samples["ok"].to_numpy(dtype=bool)
        self.metrics = [str(c) for c in samples["metric"].cat.categories]
        self.metric = samples["metric"].array.codes
        self.errors = [str(c) for c in samples["error"].cat.categories]
        self.error = samples["error"].array.codes
        phases = [str(c) for c in samples["phase"].cat.categories]
        codes = samples["phase"].array.codes
        self.is_hold = codes == (phases.index("hold") if "hold" in phases else -2)
        arrival_phase = np.isin(codes, [phases.index(p) for p in ("ramp", "settle") if p in phases])
        self.is_arrival_phase = arrival_phase
        arrival_codes = [i for i, m in enumerate(self.metrics) if m in ARRIVAL_METRICS]
        self.is_arrival_metric = np.isin(self.metric, arrival_codes)
        self.samples = samples

    def codes_of(self, names: tuple[str, ...]) -> list[int]:
        return [i for i, m in enumerate(self.metrics) if m in names]


def _keys(a: SampleArrays, mask: np.ndarray, n_metrics: int) -> np.ndarray:
    """tier * n_metrics + metric of the rows in `mask` (tiers >= 0), in a small int type."""
    top = (int(a.tier.max()) + 1) * n_metrics if a.n else 1
    dtype = np.int16 if top < np.iinfo(np.int16).max else np.int64
    tier = a.tier[mask].astype(dtype)
    tier *= n_metrics
    tier += a.metric[mask]
    return tier


def _distributions(a: SampleArrays, mask: np.ndarray, n_metrics: int) -> dict[int, Distribution]:
    """One Distribution per (tier, metric) key over the rows in `mask`, metric by metric,
    so the temporaries are one metric's values, never a sorted copy of every row."""
    out: dict[int, Distribution] = {}
    for code in range(len(a.metrics)):
        rows = a.metric == code
        rows &= mask
        if not rows.any():
            continue
        out.update(
            (int(tier) * n_metrics + code, d)
            for tier, d in grouped_distributions(a.tier[rows], a.value[rows]).items()
        )
    return out


def compute_tiers(
    arrays: SampleArrays, windows: list[TierWindow], stats_interval_s: float
) -> list[TierStats]:
    a = arrays
    out = {
        w.tier: TierStats(
            tier=w.tier,
            size=w.size,
            role=w.role,
            hold_start=w.hold_start,
            hold_end=w.hold_end,
            hold_s=w.hold_s,
            arrival_s=w.arrival_s,
            ended=w.ended,
            connected=w.connected,
        )
        for w in windows
    }
    if a.n == 0:
        return [out[k] for k in sorted(out)]
    n_metrics = max(1, len(a.metrics))
    judged = a.tier >= 1
    judged &= np.where(a.is_arrival_metric, a.is_arrival_phase | a.is_hold, a.is_hold)
    measured = a.ok & np.isfinite(a.value)
    judged_d = _distributions(a, judged & measured, n_metrics)
    ramp_only = a.tier >= 1
    ramp_only &= ~a.is_arrival_metric
    ramp_only &= a.is_arrival_phase
    ramp_only &= measured
    del measured
    ramp_d = _distributions(a, ramp_only, n_metrics)
    del ramp_only

    attempt_codes = a.codes_of(ATTEMPT_METRICS)
    is_attempt = np.isin(a.metric, attempt_codes) | ~a.ok
    is_attempt &= judged
    attempts = np.bincount(_keys(a, is_attempt, n_metrics))
    del is_attempt
    failed = judged & ~a.ok
    del judged
    failures = np.bincount(_keys(a, failed, n_metrics))
    n_err = max(1, len(a.errors))
    by_kind = np.bincount(a.tier[failed].astype(np.int64) * n_err + a.error[failed], minlength=0)
    del failed

    def stats(d: Distribution | None, k: int) -> MetricStats:
        base = d or Distribution(0)
        return MetricStats(
            **base.__dict__,
            attempts=int(attempts[k]) if k < attempts.size else 0,
            failures=int(failures[k]) if k < failures.size else 0,
        )

    for k in set(judged_d) | set(np.flatnonzero(attempts).tolist()):
        tier, metric = divmod(k, n_metrics)
        ts = out.setdefault(tier, TierStats(tier, 0, "", None, None, 0.0, 0.0, False, None))
        ts.metrics[a.metrics[metric]] = stats(judged_d.get(k), k)
    for k, d in ramp_d.items():
        tier, metric = divmod(k, n_metrics)
        if tier in out:
            out[tier].ramp_metrics[a.metrics[metric]] = MetricStats(**d.__dict__)
    for ts in out.values():
        ts.metrics = dict(sorted(ts.metrics.items()))
        ts.attempts = sum(m.attempts for m in ts.metrics.values())
        ts.failures = sum(m.failures for m in ts.metrics.values())
        base = ts.tier * n_err
        if base < by_kind.size:
            for e, count in enumerate(by_kind[base : base + n_err].tolist()):
                if count and e < len(a.errors):
                    kind = a.errors[e] or "unknown"
                    ts.failures_by_kind[kind] = ts.failures_by_kind.get(kind, 0) + count
        ts.throughput = _throughput(ts, stats_interval_s)
    return [out[k] for k in sorted(out)]


def _throughput(ts: TierStats, stats_interval_s: float) -> Throughput:
    tp = Throughput()
    join = ts.metrics.get("join_ms")
    if join is not None and ts.arrival_s > 0:
        tp.joins_per_s = join.count / ts.arrival_s
    data = ts.metrics.get("data_e2e_ms")
    if data is not None and ts.hold_s > 0:
        tp.data_msgs_per_s = data.count / ts.hold_s
    rx = ts.metrics.get("rx_kbps")
    if rx is not None and rx.count and ts.hold_s > 0 and rx.mean is not None:
        # each row is one track over one stats interval: kbit = kbps x interval
        tp.media_kbps = rx.mean * rx.count * stats_interval_s / ts.hold_s
    return tp
