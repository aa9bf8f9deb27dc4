"""Per-tier totals of the judged rows, accumulated batch by batch (tiers.py judges them).

The counts (attempts, failures by metric and error), the tracks seen and the video layers
received are added up from any number of batches of rows (`SampleArrays`). The
distributions (count, exact P50/P95/P99, max, mean) of each (tier, metric) group are
computed two ways, with the same result:

- `HeldValues`: every value is in memory (results that fit): the groups' values are
  gathered by one stable sort of a small integer key, and each group's order statistics
  selected with `numpy.partition`, as `numpy.percentile` itself does;
- `Histograms` (streamed results): pass 1 counts each group's values in 65,536 buckets
  of their float64 bit pattern (order preserving); the buckets holding the order
  statistics the percentiles need are then known, and pass 2 keeps only the distinct
  values of those buckets (with their counts), from which the order statistics are exact.
  Memory is bounded by the number of groups, not of rows.

Either way each percentile is numpy's linear interpolation (percentiles.py) between the
same two order statistics, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lkload.analysis.coverage import merge_spans
from lkload.analysis.percentiles import (
    Distribution,
    distribution,
    from_order_statistics,
    ranks,
)

if TYPE_CHECKING:
    from lkload.analysis.tiers import SampleArrays

JUDGED, RAMP = 0, 1  # distribution sets: the judged rows, and ramp/settle rows shown apart
_BUCKET_BITS = 16
_BUCKETS = 1 << _BUCKET_BITS
_SIGN = np.uint64(1 << 63)

GroupKey = tuple[int, int, int]  # (set, tier, metric code)
Run = tuple[GroupKey, int, int]  # a group's rows: order[start:end]


def order_key(values: np.ndarray) -> np.ndarray:
    """float64 values as uint64 that sort in the same order as the values."""
    bits = values.view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _grouped(sets: np.ndarray, a: SampleArrays) -> tuple[np.ndarray, list[Run]] | None:
    """The rows of each group (set, tier, metric): one stable sort of a small integer key
    (numpy's radix sort for int16), rows of no set (-1) sorted last and left out. Returns
    (the order, [(group, start, end)] into it); None when no row is in a set."""
    included = sets >= 0
    if not included.any():
        return None
    tiers = a.tier[included]
    lo, hi = int(tiers.min()), int(tiers.max())
    del tiers
    n_tiers, n_metrics = hi - lo + 1, max(1, len(a.metrics))
    top = 2 * n_tiers * n_metrics  # the key of the rows left out
    dtype = np.int16 if top < np.iinfo(np.int16).max else np.int32
    key: Any = sets.astype(dtype)
    key *= n_tiers
    key += a.tier.astype(dtype)
    key -= lo
    key *= n_metrics
    key += a.metric.astype(dtype)
    key[~included] = top
    counts = np.bincount(key, minlength=top + 1)
    order = np.argsort(key, kind="stable")
    del key
    ends = np.cumsum(counts)
    runs = []
    for k in np.flatnonzero(counts[:top]).tolist():
        rest, metric = divmod(k, n_metrics)
        s, tier = divmod(rest, n_tiers)
        runs.append(((s, tier + lo, metric), int(ends[k] - counts[k]), int(ends[k])))
    return order, runs


class HeldValues:
    """Distributions over values all held in memory (one or more batches)."""

    def __init__(self) -> None:
        self._pieces: list[tuple[np.ndarray, list[Run], np.ndarray]] = []

    def add(self, sets: np.ndarray, a: SampleArrays) -> None:
        """`sets`: per row of `a`, its set (JUDGED, RAMP), or -1 for none."""
        grouped = _grouped(sets, a)
        if grouped is not None:
            self._pieces.append((*grouped, a.value))

    def distributions(self) -> dict[GroupKey, Distribution]:
        if len(self._pieces) == 1:  # everything in one batch: one group's copy at a time
            order, runs, value = self._pieces.pop()
            return {g: distribution(value[order[s:e]], scratch=True) for g, s, e in runs}
        parts: dict[GroupKey, list[np.ndarray]] = {}
        for order, runs, value in self._pieces:
            for g, s, e in runs:
                parts.setdefault(g, []).append(value[order[s:e]])
        self._pieces.clear()
        return {g: distribution(np.concatenate(p), scratch=True) for g, p in parts.items()}


@dataclass
class _Group:
    hist: np.ndarray  # int64 per bucket
    count: int = 0
    top: float = -np.inf
    total: float = 0.0
    # pass 2: needed bucket -> (distinct values, counts) pieces
    wanted: dict[int, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)


class Histograms:
    """Exact distributions in two passes over the rows, memory bounded by the groups."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, _Group] = {}
        self.second_pass = False

    def _runs(
        self, sets: np.ndarray, a: SampleArrays
    ) -> Iterator[tuple[GroupKey, np.ndarray, np.ndarray]]:
        grouped = _grouped(sets, a)
        if grouped is None:
            return
        order, runs = grouped
        for g, s, e in runs:
            values = a.value[order[s:e]]
            yield g, values, (order_key(values) >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)

    def add(self, sets: np.ndarray, a: SampleArrays) -> None:
        """`sets`: per row of `a`, its set (JUDGED, RAMP), or -1 for none."""
        if self.second_pass:
            self._collect(sets, a)
            return
        for g, values, buckets in self._runs(sets, a):
            group = self._groups.get(g)
            if group is None:
                group = self._groups[g] = _Group(np.zeros(_BUCKETS, np.int64))
            group.hist += np.bincount(buckets, minlength=_BUCKETS)
            group.count += int(values.size)
            group.top = max(group.top, float(values.max()))
            group.total += float(values.sum())

    def start_second_pass(self) -> None:
        """After pass 1: which buckets hold the order statistics each group needs."""
        self.second_pass = True
        for group in self._groups.values():
            lo, hi = ranks(group.count)[:2]
            cum = np.cumsum(group.hist)
            for r in {*lo.tolist(), *hi.tolist()}:
                group.wanted.setdefault(int(np.searchsorted(cum, r, side="right")), [])
            group.hist = cum  # kept cumulative: ranks within a bucket

    def _collect(self, sets: np.ndarray, a: SampleArrays) -> None:
        for g, values, buckets in self._runs(sets, a):
            group = self._groups.get(g)
            if group is None:  # pass 2 must read exactly the rows of pass 1
                raise RuntimeError(f"streamed analysis: group {g} appeared in pass 2 only")
            for b, pieces in group.wanted.items():
                hit = values[buckets == b]
                if hit.size:
                    pieces.append(np.unique(hit, return_counts=True))

    def distributions(self) -> dict[GroupKey, Distribution]:
        out = {}
        for g, group in self._groups.items():
            kth: dict[int, float] = {}
            lo, hi = ranks(group.count)[:2]
            for r in {*lo.tolist(), *hi.tolist()}:
                b = int(np.searchsorted(group.hist, r, side="right"))
                before = int(group.hist[b - 1]) if b else 0
                pieces = group.wanted[b]
                values = np.concatenate([v for v, _ in pieces])
                counts = np.concatenate([c for _, c in pieces])
                order = np.argsort(values, kind="stable")
                cum = np.cumsum(counts[order])
                kth[r] = float(values[order][int(np.searchsorted(cum, r - before, side="right"))])
            mean = group.total / group.count
            out[g] = from_order_statistics(group.count, group.top, mean, kth)
        self._groups.clear()
        return out


@dataclass
class Totals:
    """What compute_tiers needs of every row, in category codes (stable across batches)."""

    values: HeldValues | Histograms
    rows: int = 0
    attempts: dict[tuple[int, int], int] = field(default_factory=dict)  # (tier, metric)
    failures: dict[tuple[int, int, int], int] = field(default_factory=dict)  # + error code
    tracks: set[tuple[int, int, int]] = field(default_factory=set)  # (tier, pub, track)
    measured_tracks: set[tuple[int, int, int]] = field(default_factory=set)
    has_tracks: bool = False  # some row names a track
    # (tier, participant, track, detail code) of rx rows with a "layer WxH" detail
    layers: set[tuple[int, int, int, int]] = field(default_factory=set)
    # per tier, each worker's first and last sample t in the hold (coverage.worker_spans),
    # merged batch by batch; None: computed from the rows at hand (they are every row)
    spans: dict[int, dict[str, tuple[float, float]]] | None = None
    # each worker's ok rows tagged with each tier's hold: first and last t (drift.py),
    # merged batch by batch; None: computed from the rows at hand
    tagged: dict[tuple[str, int], tuple[float, float]] | None = None
    # per batch, track_loss.track_loss_parts (summed at the end); None: from the rows at hand
    loss_parts: list[Any] | None = None

    def add_spans(self, batch: dict[int, dict[str, tuple[float, float]]]) -> None:
        spans = self.spans if self.spans is not None else {}
        self.spans = spans
        for tier, workers in batch.items():
            merge_spans(spans.setdefault(tier, {}), workers)


def pack_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, list[int]] | None:
    """One int64 key per row of `columns` (non-negative ints), ordered as the rows' tuples,
    and the columns' sizes (`unpack_keys` turns keys back into columns): a group-by of
    several small columns as one numpy unique, no Python per row. None where the key would
    overflow int64 (never in practice: a stacked unique serves then)."""
    sizes = [int(c.max()) + 1 if c.size else 1 for c in columns]
    if float(np.prod(np.array(sizes, dtype=np.float64))) >= 2.0**62:
        return None
    key = np.zeros(columns[0].size, np.int64)
    for c, size in zip(columns, sizes, strict=True):
        key *= size
        key += c
    return key, sizes


def unpack_keys(keys: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """`pack_rows`' keys as their columns."""
    parts = []
    for size in reversed(sizes):
        keys, part = np.divmod(keys, size)
        parts.append(part)
    return parts[::-1]


def _unique_rows(columns: list[np.ndarray]) -> tuple[list[tuple[int, ...]], list[int]]:
    """The distinct tuples of `columns` (small non-negative ints, tiers from -2) and how
    many rows each."""
    cols = [c.astype(np.int64) for c in columns]
    cols[0] = cols[0] + 2  # tiers: -2 (teardown) and up
    packed = pack_rows(cols)
    if packed is None:
        keys2, counts2 = np.unique(np.stack(cols, axis=1), axis=0, return_counts=True)
        return [(k[0] - 2, *k[1:]) for k in keys2.tolist()], counts2.tolist()
    keys, counts = np.unique(packed[0], return_counts=True)
    parts = [part.tolist() for part in unpack_keys(keys, packed[1])]
    parts[0] = [t - 2 for t in parts[0]]
    return list(zip(*parts, strict=True)), counts.tolist()


def _count(into: dict, columns: list[np.ndarray]) -> None:
    """Add the number of rows of each distinct tuple of `columns` to `into`."""
    if columns[0].size == 0:
        return
    for key, n in zip(*_unique_rows(columns), strict=True):
        into[key] = into.get(key, 0) + n


def _distinct(into: set, columns: list[np.ndarray]) -> None:
    if columns[0].size:
        into.update(_unique_rows(columns)[0])


LAYER_PREFIX = "layer "


def _judged(a: SampleArrays) -> np.ndarray:
    """Rows judged for their tier: arrival metrics in its ramp, settle or hold, every
    other metric in its hold."""
    judged = a.tier >= 1
    judged &= np.where(a.is_arrival_metric, a.is_arrival_phase | a.is_hold, a.is_hold)
    return judged


def add_values(a: SampleArrays, totals: Totals, judged: np.ndarray | None = None) -> None:
    """Add the measured values of judged rows (set JUDGED) and of other metrics' ramp and
    settle rows (set RAMP) to the distributions."""
    judged = _judged(a) if judged is None else judged
    measured = a.ok & np.isfinite(a.value)
    sets = np.full(a.n, -1, np.int8)
    sets[measured & judged] = JUDGED
    measured &= a.tier >= 1
    measured &= ~a.is_arrival_metric
    measured &= a.is_arrival_phase
    sets[measured] = RAMP  # never judged rows: arrival phases are not holds
    del measured, judged
    totals.values.add(sets, a)


def accumulate(a: SampleArrays, totals: Totals) -> None:
    """Add one batch of rows (tiers by time already assigned) to the totals."""
    totals.rows += a.n
    if a.n == 0:
        return
    judged = _judged(a)
    attempt = a.ok_attempt_lut[a.metric] | ~a.ok
    attempt &= judged
    _count_tier_metric(totals.attempts, attempt, a, max(1, len(a.metrics)))
    del attempt
    failed = np.flatnonzero(judged & ~a.ok)  # failures are few
    _count(totals.failures, [a.tier[failed], a.metric[failed], a.error[failed]])
    del failed
    _tracks(a, totals)
    _layers(a, totals)
    add_values(a, totals, judged)  # last: its sort order is held until the distributions


def _count_tier_metric(into: dict, rows: np.ndarray, a: SampleArrays, n_metrics: int) -> None:
    """Rows (a mask; tiers >= 1) per (tier, metric): one bincount of a small key."""
    if not rows.any():
        return
    key = a.tier.astype(np.int32)
    key *= n_metrics
    key += a.metric
    key[~rows] = 0  # tier 0: no row in `rows`
    counts = np.bincount(key)
    counts[0] = 0
    for k in np.flatnonzero(counts).tolist():
        t, m = divmod(k, n_metrics)
        into[(t, m)] = into.get((t, m), 0) + int(counts[k])


def _tracks(a: SampleArrays, totals: Totals) -> None:
    """Distinct (tier, publisher, track) of the hold's rx_kbps and media_e2e_ms rows."""
    s = a.samples
    tracks = s["track"].cat.categories
    if not any(str(t) for t in tracks):
        return
    totals.has_tracks = True
    track_codes = s["track"].array.codes
    pub_codes = s["publisher"].array.codes
    empty = tracks.get_loc("") if "" in tracks else -2
    for names, into in (
        (("rx_kbps",), totals.tracks),
        (("media_e2e_ms",), totals.measured_tracks),
    ):
        codes = a.codes_of(names)
        if not codes:
            continue
        rows = a.metric == codes[0]
        rows &= a.is_hold  # hold spans are tiers >= 1
        rows &= track_codes != empty
        idx = np.flatnonzero(rows)
        _distinct(into, [a.tier[idx], pub_codes[idx], track_codes[idx]])


def _layers(a: SampleArrays, totals: Totals) -> None:
    s = a.samples
    rx = a.codes_of(("rx_kbps",))
    if not rx:
        return
    details = s["detail"].cat.categories
    layer = np.array([str(d).startswith(LAYER_PREFIX) for d in details] + [False])
    if not layer.any():
        return
    detail = s["detail"].array.codes
    rows = a.metric == rx[0]
    rows &= a.is_hold
    rows &= a.ok
    rows &= layer[detail]  # code -1 (missing) reads the last entry: False
    idx = np.flatnonzero(rows)
    _distinct(
        totals.layers,
        [a.tier[idx], s["participant"].array.codes[idx], s["track"].array.codes[idx], detail[idx]],
    )
