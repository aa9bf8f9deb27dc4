"""Per-tier statistics from the raw samples: latency percentiles, errors, throughput.

Which rows count for a tier (docs/results-format.md) is decided by time, not by the rows'
tags: a row belongs to the span of the timeline's phases that contains its `t`
(`windows.assign_rows`). Arrival metrics (`join_ms`, `publish_ms`, `first_track_ms`) count
for the tier in whose ramp, settle or hold they happened; every other metric only in the
tier's hold.
Rows of other metrics during ramp and settle are shown separately (`ramp_metrics`) and never
mixed into the judged numbers; teardown rows are counted apart (`teardown_stats`), never
judged. Error rates are per kind of attempt (`kinds`); the pooled sum decides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from lkload.analysis.clocks import NegativeLatency, negative_latencies
from lkload.analysis.coverage import worker_spans
from lkload.analysis.kinds import KINDS, KindRate, attempt_mask, kind_luts
from lkload.analysis.percentiles import Distribution, grouped_distributions
from lkload.analysis.track_loss import TrackLoss, track_loss
from lkload.analysis.windows import ARRIVAL, HOLD, TEARDOWN, TierWindow, Windows, assign_rows
from lkload.metrics.schema import ARRIVAL_METRICS


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
class Connected:
    """Participants connected over a tier's hold, from the samples: each from its ok
    `join_ms` row until its `session_s` row (works across workers)."""

    at_start: int
    min: int
    at_end: int
    # participants that went with a worker lost in the tier's ramp, settle or hold (its
    # `worker_lost` event's `connected`): missing by the generator's loss, not the server's
    lost: int = 0


@dataclass
class TrackCoverage:
    """Subscribed tracks in a tier's hold: distinct (publisher, track) with `rx_kbps` rows,
    and those of them with `media_e2e_ms` rows (publishers known to map RTP time to capture
    time)."""

    tracks: int
    measured: int


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
    connected: int | None  # the timeline's tier_end count (a cross-check)
    metrics: dict[str, MetricStats] = field(default_factory=dict)
    ramp_metrics: dict[str, MetricStats] = field(default_factory=dict)
    kinds: dict[str, KindRate] = field(default_factory=dict)  # per kind of attempt: judged
    attempts: int = 0  # pooled over every kind: shown, decides nothing
    failures: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)  # by error kind
    throughput: Throughput = field(default_factory=Throughput)
    connected_over_hold: Connected | None = None  # None: no join rows in the campaign
    coverage: TrackCoverage | None = None  # None: no track columns (results before v2)
    # video layers received in the hold ("WxH" -> subscriptions that received it at some
    # point: distinct participant and track; from the rx_kbps rows' "layer WxH" detail)
    layers: dict[str, int] = field(default_factory=dict)
    # subscribed tracks' loss over the hold, each lost / expected (None: no loss rows)
    track_loss: TrackLoss | None = None
    # workers that wrote samples in the hold: their first and last sample's t there
    worker_spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    # e2e metrics with negative values in the hold (clocks disagree): not judged as latency
    negative_e2e: dict[str, NegativeLatency] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        """The pooled rate over every kind of attempt: informative, never judged."""
        return self.failures / self.attempts if self.attempts else None

    @property
    def has_data(self) -> bool:
        return self.attempts > 0 or any(m.count for m in self.metrics.values())


@dataclass
class TeardownStats:
    """Rows after the last tier's hold (or the recovery): reported, never judged."""

    start: float | None
    end: float | None
    inferred: bool  # no teardown phase event: from tier_end / abort / campaign_end
    samples: int = 0
    kinds: dict[str, KindRate] = field(default_factory=dict)


class SampleArrays:
    """The sample columns as numpy arrays (views of the DataFrame's, no copies) plus
    category codes, each row's tier and span phase by time, built once."""

    def __init__(self, samples: pd.DataFrame, windows: Windows | None = None) -> None:
        self.n = len(samples)
        self.t = samples["t"].to_numpy(dtype=np.float64)
        self.tier_tag = samples["tier"].to_numpy()  # int16, as written
        self.value = samples["value"].to_numpy(dtype=np.float64)
        self.ok = samples["ok"].to_numpy(dtype=bool)
        self.metrics = [str(c) for c in samples["metric"].cat.categories]
        self.metric = samples["metric"].array.codes
        self.errors = [str(c) for c in samples["error"].cat.categories]
        self.error = samples["error"].array.codes
        if windows is None:
            windows = Windows([], None, None, None, None, None, from_timeline=False)
        # tier: 1-based in a tier's arrival or hold, -1 recovery, -2 teardown, 0 outside
        self.tier, self.phase = assign_rows(windows, self.t, self.tier_tag, samples["phase"])
        self.is_hold = self.phase == HOLD
        self.is_arrival_phase = self.phase == ARRIVAL
        arrival_codes = [i for i, m in enumerate(self.metrics) if m in ARRIVAL_METRICS]
        self.is_arrival_metric = np.isin(self.metric, arrival_codes)
        self.kind_lut, self.ok_attempt_lut = kind_luts(self.metrics)
        self.samples = samples

    def codes_of(self, names: tuple[str, ...]) -> list[int]:
        return [i for i, m in enumerate(self.metrics) if m in names]

    def error_name(self, code: int) -> str:
        return (self.errors[code] if 0 <= code < len(self.errors) else "") or "unknown"


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


def kind_rates(
    a: SampleArrays, rows: np.ndarray, groups: np.ndarray, n_groups: int
) -> dict[int, dict[str, KindRate]]:
    """Per group (a small non-negative int per row in `rows`, e.g. a tier) and kind of
    attempt: KindRate. `rows` are indices or a mask into the arrays."""
    metric = a.metric[rows]
    ok = a.ok[rows]
    kind = a.kind_lut[metric].astype(np.int64)
    n_kinds, n_err = len(KINDS), max(1, len(a.errors))
    key = groups.astype(np.int64) * n_kinds + kind
    attempts = np.bincount(key[attempt_mask(metric, ok, a.ok_attempt_lut)], minlength=0)
    failed = ~ok
    err = np.bincount(key[failed] * n_err + a.error[rows][failed], minlength=0)
    out: dict[int, dict[str, KindRate]] = {}
    for k in np.flatnonzero(attempts).tolist():
        group, kind_i = divmod(k, n_kinds)
        if group >= n_groups:
            continue
        by_error = {
            a.error_name(e): int(c)
            for e, c in enumerate(err[k * n_err : (k + 1) * n_err].tolist())
            if c
        }
        out.setdefault(group, {})[KINDS[kind_i]] = KindRate(
            int(attempts[k]), sum(by_error.values()), by_error
        )
    return {g: {k: kinds[k] for k in KINDS if k in kinds} for g, kinds in out.items()}


def compute_tiers(
    arrays: SampleArrays,
    windows: list[TierWindow],
    stats_interval_s: float,
    losses: Sequence[WorkerGone] = (),
) -> list[TierStats]:
    """`losses`: workers lost mid-campaign, whose participants left without a row."""
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

    is_attempt = a.ok_attempt_lut[a.metric] | ~a.ok
    is_attempt &= judged
    attempts = np.bincount(_keys(a, is_attempt, n_metrics))
    del is_attempt
    failed = np.flatnonzero(judged & ~a.ok)  # failures are few: their indices are small
    del judged
    n_err = max(1, len(a.errors))
    fkey = a.tier[failed].astype(np.int64) * n_metrics + a.metric[failed]
    failures = np.bincount(fkey)
    by_kind = np.bincount(a.tier[failed].astype(np.int64) * n_err + a.error[failed], minlength=0)
    # per (tier, metric, error kind): each kind of attempt's failures by error
    by_error = np.bincount(fkey * n_err + a.error[failed])
    del failed, fkey

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
    joins = connected_series(a, losses)
    coverage = track_coverage(a)
    layers = layers_received(a)
    track_losses = track_loss(a)
    spans = worker_spans(a)
    negatives = negative_latencies(a)
    for ts in out.values():
        ts.layers = layers.get(ts.tier, {})
        ts.track_loss = track_losses.get(ts.tier)
        ts.worker_spans = spans.get(ts.tier, {})
        ts.negative_e2e = negatives.get(ts.tier, {})
        ts.metrics = dict(sorted(ts.metrics.items()))
        ts.kinds = _kinds_of(a, ts, by_error, n_metrics, n_err)
        ts.attempts = sum(k.attempts for k in ts.kinds.values())
        ts.failures = sum(k.failures for k in ts.kinds.values())
        base = ts.tier * n_err
        if base < by_kind.size:
            for e, count in enumerate(by_kind[base : base + n_err].tolist()):
                if count and e < len(a.errors):
                    kind = a.errors[e] or "unknown"
                    ts.failures_by_kind[kind] = ts.failures_by_kind.get(kind, 0) + count
        ts.throughput = _throughput(ts, stats_interval_s)
        if joins is not None and ts.hold_start is not None and ts.hold_end is not None:
            ts.connected_over_hold = _over(joins, ts.hold_start, ts.hold_end)
            arrived = ts.hold_start - ts.arrival_s
            ts.connected_over_hold.lost = sum(
                g.connected for g in losses if arrived <= g.t <= ts.hold_end
            )
        if coverage is not None:
            ts.coverage = coverage.get(ts.tier, TrackCoverage(0, 0))
    return [out[k] for k in sorted(out)]


def _kinds_of(
    a: SampleArrays, ts: TierStats, by_error: np.ndarray, n_metrics: int, n_err: int
) -> dict[str, KindRate]:
    """Each kind of attempt of one tier, summed from its metrics' attempts and failures
    (the same rows: every failure, and ok rows of attempt metrics)."""
    kinds: dict[str, KindRate] = {}
    for code, name in enumerate(a.metrics):
        m = ts.metrics.get(name)
        if m is None or not m.attempts:
            continue
        k = kinds.setdefault(KINDS[a.kind_lut[code]], KindRate())
        k.attempts += m.attempts
        k.failures += m.failures
        base = (ts.tier * n_metrics + code) * n_err
        for e, count in enumerate(by_error[base : base + n_err].tolist()):
            if count:
                err = a.error_name(e)
                k.by_error[err] = k.by_error.get(err, 0) + count
    return {k: kinds[k] for k in KINDS if k in kinds}


@dataclass(frozen=True)
class WorkerGone:
    """A worker lost at `t` with `connected` participants: they left without a
    `session_s` row (its rows after the loss never reached the master)."""

    worker: str
    t: float
    connected: int


def connected_series(
    a: SampleArrays, losses: Sequence[WorkerGone] = ()
) -> tuple[np.ndarray, np.ndarray] | None:
    """(times, participants connected just after each) from ok `join_ms` rows (+1),
    `session_s` rows (-1) and lost workers' participants (-connected at the loss), sorted by
    time; None when the campaign has no join rows."""
    join = a.codes_of(("join_ms",))
    if not join:
        return None
    plus = np.flatnonzero(np.isin(a.metric, join) & a.ok)
    minus_rows = np.isin(a.metric, a.codes_of(("session_s",)))
    for g in losses:  # a lost worker's own session rows after the loss: counted at the loss
        minus_rows &= ~((a.samples["worker"] == g.worker).to_numpy() & (a.t >= g.t))
    minus = np.flatnonzero(minus_rows)
    gone_t = np.array([g.t for g in losses], np.float64)
    gone = np.array([-g.connected for g in losses], np.int64)
    t = np.concatenate([a.t[plus], a.t[minus], gone_t])
    step = np.concatenate([np.ones(plus.size, np.int64), -np.ones(minus.size, np.int64), gone])
    order = np.argsort(t, kind="stable")
    return t[order], np.cumsum(step[order])


def _over(series: tuple[np.ndarray, np.ndarray], start: float, end: float) -> Connected:
    t, count = series

    def at(x: float) -> int:
        i = int(np.searchsorted(t, x, side="right"))
        return int(count[i - 1]) if i else 0

    lo, hi = np.searchsorted(t, [start, end], side="right")
    inside = count[lo:hi]
    first = at(start)
    low = min(first, int(inside.min())) if inside.size else first
    return Connected(at_start=first, min=low, at_end=at(end))


LAYER_PREFIX = "layer "


def layers_received(a: SampleArrays) -> dict[int, dict[str, int]]:
    """Per tier: the video layers subscribers received in the hold (rx_kbps rows whose
    detail is "layer WxH": aiortc subscribers of VP8 tracks), each with the number of
    subscriptions (participant, track) that received it."""
    s = a.samples
    rx = a.codes_of(("rx_kbps",))
    if not rx or "detail" not in s.columns or a.n == 0:
        return {}
    rows = np.flatnonzero((a.metric == rx[0]) & a.is_hold & a.ok)
    if rows.size == 0:
        return {}
    detail = s["detail"].iloc[rows].astype(str).to_numpy()
    has = np.char.startswith(detail.astype("U"), LAYER_PREFIX)
    if not has.any():
        return {}
    rows, detail = rows[has], detail[has]
    frame = pd.DataFrame(
        {
            "tier": a.tier[rows],
            "who": s["participant"].iloc[rows].astype(str).to_numpy(),
            "track": s["track"].iloc[rows].astype(str).to_numpy(),
            "layer": [d[len(LAYER_PREFIX) :] for d in detail],
        }
    ).drop_duplicates()
    out: dict[int, dict[str, int]] = {}
    counts = frame.groupby(["tier", "layer"]).size()
    for key, n in counts.items():
        tier, layer = cast(tuple[Any, Any], key)
        out.setdefault(int(tier), {})[str(layer)] = int(n)
    return out


def track_coverage(a: SampleArrays) -> dict[int, TrackCoverage] | None:
    """Per tier: tracks with rx_kbps rows in its hold, and how many have media_e2e_ms rows.
    None when no row names a track (results written before the track columns)."""
    s = a.samples
    tracks = [str(c) for c in s["track"].cat.categories]
    if not any(tracks):
        return None
    rx, e2e = a.codes_of(("rx_kbps",)), a.codes_of(("media_e2e_ms",))
    if not rx:
        return {}
    track_codes = s["track"].array.codes
    pub_codes = s["publisher"].array.codes
    empty = tracks.index("") if "" in tracks else -2
    n_track = len(tracks) + 1
    n_pub = len(s["publisher"].cat.categories) + 1

    def keys(code: int) -> np.ndarray:
        """Distinct (tier, publisher, track) of one metric's hold rows, as int64 keys."""
        rows = a.metric == code
        rows &= a.is_hold  # hold spans are tiers >= 1
        rows &= track_codes != empty
        idx = np.flatnonzero(rows)
        del rows
        key = a.tier[idx].astype(np.int64) * n_pub + pub_codes[idx]
        key *= n_track
        key += track_codes[idx]
        return np.unique(key)

    seen = keys(rx[0])
    measured = np.isin(seen, keys(e2e[0])) if e2e else np.zeros(seen.size, bool)
    tier_of = seen // (n_pub * n_track)
    out: dict[int, TrackCoverage] = {}
    for tier in np.unique(tier_of).tolist():
        sel = tier_of == tier
        out[int(tier)] = TrackCoverage(int(sel.sum()), int(measured[sel].sum()))
    return out


def teardown_stats(a: SampleArrays, windows: Windows) -> TeardownStats:
    out = TeardownStats(windows.teardown_start, windows.end, inferred=not windows.teardown_event)
    if a.n == 0:
        return out
    rows = np.flatnonzero(a.phase == TEARDOWN)
    out.samples = int(rows.size)
    if rows.size:
        out.kinds = kind_rates(a, rows, np.zeros(rows.size, np.int64), 1).get(0, {})
    return out


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
