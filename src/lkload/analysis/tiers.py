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
    """The sample columns as numpy arrays plus category codes, built once."""

    def __init__(self, samples: pd.DataFrame) -> None:
        self.n = len(samples)
        self.t = samples["t"].to_numpy(dtype=np.float64)
        self.tier = samples["tier"].to_numpy().astype(np.int32)
        self.value = samples["value"].to_numpy(dtype=np.float64)
        self.ok = samples["ok"].to_numpy(dtype=bool)
        self.metrics = [str(c) for c in samples["metric"].cat.categories]
        self.metric = samples["metric"].cat.codes.to_numpy()
        self.errors = [str(c) for c in samples["error"].cat.categories]
        self.error = samples["error"].cat.codes.to_numpy()
        phases = [str(c) for c in samples["phase"].cat.categories]
        codes = samples["phase"].cat.codes.to_numpy()
        self.is_hold = codes == (phases.index("hold") if "hold" in phases else -2)
        arrival_phase = np.isin(codes, [phases.index(p) for p in ("ramp", "settle") if p in phases])
        self.is_arrival_phase = arrival_phase
        arrival_codes = [i for i, m in enumerate(self.metrics) if m in ARRIVAL_METRICS]
        self.is_arrival_metric = np.isin(self.metric, arrival_codes)
        self.samples = samples

    def codes_of(self, names: tuple[str, ...]) -> list[int]:
        return [i for i, m in enumerate(self.metrics) if m in names]


def _tier_index(tier: np.ndarray, min_tier: int) -> np.ndarray:
    return tier - min_tier


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
    positive = a.tier >= 1
    judged = positive & np.where(a.is_arrival_metric, True, a.is_hold)
    judged &= ~(a.is_arrival_metric & ~(a.is_arrival_phase | a.is_hold))
    ramp_only = positive & ~a.is_arrival_metric & a.is_arrival_phase
    measured = a.ok & np.isfinite(a.value)
    key = a.tier.astype(np.int64) * n_metrics + a.metric

    def dists(mask: np.ndarray) -> dict[int, Distribution]:
        return grouped_distributions(key[mask], a.value[mask])

    judged_d = dists(judged & measured)
    ramp_d = dists(ramp_only & measured)

    attempt_codes = a.codes_of(ATTEMPT_METRICS)
    is_attempt = (np.isin(a.metric, attempt_codes) & a.ok) | ~a.ok
    max_key = int(key.max()) + 1 if key.size else 1
    attempts = np.bincount(key[judged & is_attempt], minlength=max_key)
    failed = judged & ~a.ok
    failures = np.bincount(key[failed], minlength=max_key)
    n_err = max(1, len(a.errors))
    by_kind = np.bincount(a.tier[failed].astype(np.int64) * n_err + a.error[failed], minlength=0)

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
        ts.throughput = _throughput(ts, a, judged & measured, stats_interval_s)
    return [out[k] for k in sorted(out)]


def _throughput(
    ts: TierStats, a: SampleArrays, judged_measured: np.ndarray, stats_interval_s: float
) -> Throughput:
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
