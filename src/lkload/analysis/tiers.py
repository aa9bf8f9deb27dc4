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
from typing import Any

import numpy as np
import pandas as pd

from lkload.analysis.clocks import NegativeLatency, negative_latencies
from lkload.analysis.coverage import worker_spans
from lkload.analysis.kinds import KINDS, KindRate, attempt_mask, kind_luts
from lkload.analysis.percentiles import Distribution
from lkload.analysis.totals import (
    JUDGED,
    LAYER_PREFIX,
    RAMP,
    HeldValues,
    Totals,
    accumulate,
)
from lkload.analysis.track_loss import TrackLoss, track_loss, track_loss_of
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
    totals: Totals | None = None,
) -> list[TierStats]:
    """Per-tier statistics. `losses`: workers lost mid-campaign, whose participants left
    without a row. `totals`: every row's, accumulated (a streamed analysis, whose `arrays`
    hold only some rows); by default accumulated here from `arrays`."""
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
    if totals is None:
        totals = Totals(HeldValues())
        accumulate(a, totals)
    if totals.rows == 0:
        return [out[k] for k in sorted(out)]
    dists = totals.values.distributions()
    failures: dict[tuple[int, int], int] = {}
    by_kind: dict[int, dict[str, int]] = {}  # tier -> error kind -> failures
    by_error: dict[tuple[int, int], dict[str, int]] = {}  # (tier, metric) -> error -> n
    for (tier, metric, error), n in sorted(totals.failures.items()):
        failures[(tier, metric)] = failures.get((tier, metric), 0) + n
        per_metric = by_error.setdefault((tier, metric), {})
        per_metric[a.error_name(error)] = per_metric.get(a.error_name(error), 0) + n
    for (tier, _, error), n in sorted(totals.failures.items(), key=lambda kv: kv[0][::2]):
        per_tier = by_kind.setdefault(tier, {})  # in error code order, as always shown
        per_tier[a.error_name(error)] = per_tier.get(a.error_name(error), 0) + n

    judged_keys = {(tier, metric) for (s, tier, metric) in dists if s == JUDGED}
    for tier, metric in judged_keys | {k for k, n in totals.attempts.items() if n}:
        d = dists.get((JUDGED, tier, metric)) or Distribution(0)
        ts = out.setdefault(tier, TierStats(tier, 0, "", None, None, 0.0, 0.0, False, None))
        ts.metrics[a.metrics[metric]] = MetricStats(
            **d.__dict__,
            attempts=totals.attempts.get((tier, metric), 0),
            failures=failures.get((tier, metric), 0),
        )
    for (s, tier, metric), d in dists.items():
        if s == RAMP and tier in out:
            out[tier].ramp_metrics[a.metrics[metric]] = MetricStats(**d.__dict__)
    joins = connected_series(a, losses)
    coverage = _coverage(totals)
    layers = _layers_received(a, totals)
    track_losses = (
        track_loss_of(pd.concat(totals.loss_parts).groupby(level=[0, 1, 2, 3]).sum())
        if totals.loss_parts
        else track_loss(a)
    )
    spans = totals.spans if totals.spans is not None else worker_spans(a)
    negatives = negative_latencies(a)
    for ts in out.values():
        ts.layers = layers.get(ts.tier, {})
        ts.track_loss = track_losses.get(ts.tier)
        ts.worker_spans = spans.get(ts.tier, {})
        ts.negative_e2e = negatives.get(ts.tier, {})
        for e2e, neg in ts.negative_e2e.items():
            if (m := ts.metrics.get(e2e)) is not None and m.count:
                neg.count = m.count  # every value's count (a streamed `a` keeps negatives only)
        ts.metrics = dict(sorted(ts.metrics.items()))
        ts.kinds = _kinds_of(a, ts, by_error)
        ts.attempts = sum(k.attempts for k in ts.kinds.values())
        ts.failures = sum(k.failures for k in ts.kinds.values())
        ts.failures_by_kind = by_kind.get(ts.tier, {})
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
    a: SampleArrays, ts: TierStats, by_error: dict[tuple[int, int], dict[str, int]]
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
        for err, count in by_error.get((ts.tier, code), {}).items():
            k.by_error[err] = k.by_error.get(err, 0) + count
    return {k: kinds[k] for k in KINDS if k in kinds}


@dataclass(frozen=True)
class WorkerGone:
    """A worker lost at `t` with `connected` participants: they left without a
    `session_s` row (its rows after the loss never reached the master)."""

    worker: str
    t: float
    connected: int


def _coverage(totals: Totals) -> dict[int, TrackCoverage] | None:
    """Per tier: tracks with rx_kbps rows in its hold, and how many have media_e2e_ms rows.
    None when no row names a track (results written before the track columns)."""
    if not totals.has_tracks:
        return None
    out: dict[int, TrackCoverage] = {}
    for key in totals.tracks:
        c = out.setdefault(key[0], TrackCoverage(0, 0))
        c.tracks += 1
        c.measured += key in totals.measured_tracks
    return dict(sorted(out.items()))


def _layers_received(a: SampleArrays, totals: Totals) -> dict[int, dict[str, int]]:
    """Per tier: the video layers subscribers received in the hold (rx_kbps rows whose
    detail is "layer WxH": aiortc subscribers of VP8 tracks), each with the number of
    subscriptions (participant, track) that received it."""
    details: Any = a.samples["detail"].cat.categories if "detail" in a.samples else []
    out: dict[int, dict[str, int]] = {}
    for tier, _who, _track, detail in sorted(totals.layers):
        layer = str(details[detail])[len(LAYER_PREFIX) :]
        per_tier = out.setdefault(tier, {})
        per_tier[layer] = per_tier.get(layer, 0) + 1
    return {tier: dict(sorted(layers.items())) for tier, layers in sorted(out.items())}


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
