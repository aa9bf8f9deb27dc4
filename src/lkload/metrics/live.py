"""Live statistics from per-batch aggregates: counts, failures by kind, mergeable histograms.

A worker (or the local campaign) turns each batch of samples into one aggregate per
(tier, engine, metric): ok rows, failures by kind, and a histogram of the ok rows' finite
values. Aggregates merge exactly by adding counts, so the master's live view (progress line,
Locust's statistics) never reads a sample row; the report's percentiles stay exact, from
the raw samples on disk (analysis/).

The histogram has fixed, logarithmic bucket bounds (the mapping of DDSketch, Masson et al.,
VLDB 2019): a value v ≠ 0 falls in bucket i = ceil(log_γ |v|), γ = (1 + α) / (1 - α),
represented by sign(v) · 2γ^i / (γ + 1). Every value in a bucket is then within a relative
error α of its representative. Merging = adding the counts of equal buckets, exact and
order-independent. A percentile is read as numpy's default (linear interpolation between
the two closest ranks) over the representatives of those ranks, clamped to the exact min
and max, so it is within α = 1 % of numpy's exact percentile of the same values when the
two ranks have the same sign (always, for latencies); |v| < ZERO_BELOW counts as 0.

Why not HdrHistogram (the hdrhistogram package): it records integers ≥ 0 only (lkload has
fractional and, across skewed clocks, negative values), its Python record_value costs
~2.5 µs a value and a master-side decode_and_add ~160 µs per histogram and batch (measured
here, 0.10.8), where these numpy-bucketed sparse counts merge with a dict update per
occupied bucket. Its 2-significant-digit precision is the same 1 %.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lkload.metrics.schema import Sample

ALPHA = 0.01  # relative error of a live percentile (see above)
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LN_GAMMA = math.log(GAMMA)
ZERO_BELOW = 1e-6  # |v| below this is bucket 0 (exactly 0 when read back)
LARGEST = 1e12  # |v| above this shares the last bucket (no latency comes near)
# Keys: 0 for zero, ±(i + BIAS) for positive / negative values (BIAS makes i + BIAS ≥ 1 for
# |v| ≥ ZERO_BELOW), so keys sort as their values; a histogram is one dense array of
# counts indexed by key + TOP.
_BIAS = 1 - math.ceil(math.log(ZERO_BELOW) / _LN_GAMMA)
TOP = math.ceil(math.log(LARGEST) / _LN_GAMMA) + _BIAS
SIZE = 2 * TOP + 1
JOIN_METRIC = "join_ms"
LIVE_COLUMNS = ("tier", "engine", "metric", "ok", "error", "value")

# One aggregate on the wire (msgpack): [tier, engine, metric, ok, {kind: n}, bucket keys
# (int16 bytes), their counts (int32 bytes), sum, min, max]; min/max None when no ok row
# had a finite value.
Group = list[Any]
_KEY, _COUNT = np.dtype("<i2"), np.dtype("<i4")


def bucket_keys(values: np.ndarray) -> np.ndarray:
    """The bucket key of each (finite) value."""
    a = np.abs(values)
    keys = np.zeros(values.shape, dtype=np.int64)
    nz = a >= ZERO_BELOW
    idx = np.ceil(np.log(a[nz]) / _LN_GAMMA).astype(np.int64) + _BIAS
    np.minimum(idx, TOP, out=idx)
    keys[nz] = np.where(values[nz] < 0, -idx, idx)
    return keys


def bucket_value(key: int) -> float:
    """The representative value of a bucket."""
    if key == 0:
        return 0.0
    i = abs(key) - _BIAS
    v = 2 * GAMMA**i / (GAMMA + 1)
    return v if key > 0 else -v


# The representative of every dense index, in value order.
VALUES = np.array([bucket_value(k) for k in range(-TOP, TOP + 1)])


def aggregate(columns: Mapping[str, Sequence[Any]]) -> list[Group]:
    """One aggregate per (tier, engine, metric) of a batch of sample columns (LIVE_COLUMNS;
    `error` empty or None for ok rows, `value` None where absent)."""
    tiers, engines, metrics = columns["tier"], columns["engine"], columns["metric"]
    n = len(tiers)
    if n == 0:
        return []
    names: dict[tuple[int, str, str], int] = {}
    codes = np.fromiter(
        (names.setdefault(k, len(names)) for k in zip(tiers, engines, metrics, strict=True)),
        dtype=np.int64,
        count=n,
    )
    ok = np.fromiter(columns["ok"], dtype=bool, count=n)
    values = np.array(columns["value"], dtype=np.float64)  # None → nan
    groups: list[Group] = [[*k, 0, {}, b"", b"", 0.0, None, None] for k in names]
    for g, c in enumerate(np.bincount(codes[ok], minlength=len(names)).tolist()):
        groups[g][3] = c
    errors = columns["error"]
    for i in np.flatnonzero(~ok).tolist():  # failures are few
        failed = groups[codes[i]][4]
        kind = errors[i] or "internal"
        failed[kind] = failed.get(kind, 0) + 1
    measured = ok & np.isfinite(values)
    mcodes, mvalues = codes[measured], values[measured]
    single = len(names) == 1
    for g, group in enumerate(groups):
        v = mvalues if single else mvalues[mcodes == g]
        if v.size == 0:
            continue
        keys, counts = np.unique(bucket_keys(v), return_counts=True)
        group[5], group[6] = keys.astype(_KEY).tobytes(), counts.astype(_COUNT).tobytes()
        group[7], group[8], group[9] = float(v.sum()), float(v.min()), float(v.max())
    return groups


def totals(groups: Iterable[Group]) -> dict[str, int]:
    """samples, failures, joins_ok, joins_failed of a batch's aggregates."""
    samples = failures = joins_ok = joins_failed = 0
    for g in groups:
        failed = sum(g[4].values())
        samples += g[3] + failed
        failures += failed
        if g[2] == JOIN_METRIC:
            joins_ok += g[3]
            joins_failed += failed
    return {
        "samples": samples,
        "failures": failures,
        "joins_ok": joins_ok,
        "joins_failed": joins_failed,
    }


class Histogram:
    """Merged aggregates of one group: exact counts, approximate (α) percentiles."""

    __slots__ = ("counts", "failed", "max", "measured", "min", "ok", "total")

    def __init__(self) -> None:
        self.ok = 0
        self.failed: dict[str, int] = {}
        self.counts = np.zeros(SIZE, dtype=np.int64)  # by key + TOP: value order
        self.measured = 0  # ok rows with a finite value: the counts' total
        self.total = 0.0
        self.min: float | None = None
        self.max: float | None = None

    def merge(self, g: Group) -> None:
        self.ok += g[3]
        if g[4]:
            failed = self.failed
            for kind, n in g[4].items():
                failed[kind] = failed.get(kind, 0) + n
        if g[5]:
            counts = np.frombuffer(g[6], dtype=_COUNT)
            # keys of one group are distinct: a fancy-indexed add is exact
            self.counts[np.frombuffer(g[5], dtype=_KEY) + TOP] += counts
            self.measured += int(counts.sum())
            self.total += g[7]
            self.min = g[8] if self.min is None else min(self.min, g[8])
            self.max = g[9] if self.max is None else max(self.max, g[9])

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    def percentiles(self, qs: Sequence[float]) -> list[float | None]:
        """numpy's linear percentiles (q in 0..100) of the measured values, within α."""
        n = self.measured
        if n == 0 or self.min is None or self.max is None:
            return [None] * len(qs)
        ends = np.cumsum(self.counts)  # rank r is in the first bucket whose end > r
        lo_v, hi_v = self.min, self.max

        def at(rank: int) -> float:
            v = float(VALUES[int(np.searchsorted(ends, rank, side="right"))])
            return min(max(v, lo_v), hi_v)

        out: list[float | None] = []
        for q in qs:
            h = (n - 1) * q / 100.0
            lo = math.floor(h)
            frac = h - lo
            a = at(lo)
            out.append(a if frac == 0 else a + frac * (at(min(lo + 1, n - 1)) - a))
        return out


class LiveStats:
    """The live view: merged aggregates per (tier, metric), totals, and the (engine, metric)
    aggregates not yet handed to Locust. Merge on one thread (the gevent hub)."""

    def __init__(self) -> None:
        self.tiers: dict[tuple[int, str], Histogram] = {}
        self.unflushed: dict[tuple[str, str], Histogram] = {}
        self.counts = {"samples": 0, "failures": 0, "joins_ok": 0, "joins_failed": 0}

    def merge(self, groups: list[Group]) -> dict[str, int]:
        """Add a batch's aggregates; returns its totals."""
        tiers, unflushed = self.tiers, self.unflushed
        for g in groups:
            key = (g[0], g[2])
            h = tiers.get(key)
            if h is None:
                h = tiers[key] = Histogram()
            h.merge(g)
            lkey = (g[1], g[2])
            u = unflushed.get(lkey)
            if u is None:
                u = unflushed[lkey] = Histogram()
            u.merge(g)
        added = totals(groups)
        for name, n in added.items():
            self.counts[name] += n
        return added

    def take_unflushed(self) -> dict[tuple[str, str], Histogram]:
        out, self.unflushed = self.unflushed, {}
        return out

    def tier(self, tier: int) -> dict[str, Histogram]:
        """The current tier's histograms by metric."""
        return {m: h for (t, m), h in self.tiers.items() if t == tier}


class LiveBuffer:
    """Samples recorded in this process (any thread), kept as the aggregate's columns until
    the next `take` (a single campaign's participants, a master's RoomService probe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cols: dict[str, list[Any]] = {c: [] for c in LIVE_COLUMNS}

    def add(self, s: Sample) -> None:
        with self._lock:
            c = self._cols
            c["tier"].append(s.tier)
            c["engine"].append(s.engine)
            c["metric"].append(s.metric)
            c["ok"].append(s.ok)
            c["error"].append("" if s.error is None else s.error.value)
            c["value"].append(s.value)

    def take(self) -> list[Group]:
        with self._lock:
            cols, self._cols = self._cols, {c: [] for c in LIVE_COLUMNS}
        return aggregate(cols)


__all__ = [
    "ALPHA",
    "Group",
    "Histogram",
    "LiveBuffer",
    "LiveStats",
    "aggregate",
    "bucket_keys",
    "bucket_value",
    "totals",
]
