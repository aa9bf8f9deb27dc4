"""Packet loss per subscribed track over a tier's hold (docs/metrics.md "Packet loss").

The engines write one `loss_pct` row per received track and stats interval, with the
interval's counts in the detail ("L of E packets": lost of expected). A track's loss over
the hold is its lost packets over its expected packets (the interval percentages averaged,
one interval one weight, for rows without counts: results written before the counts). The
tier is judged on its WORST track: a mean over every track would let one subscriber losing
a third of its packets hide among forty clean ones, and a P95 over tracks would still let
one track in twenty lose anything. Noise is averaged over the hold first, so one bad
interval of an otherwise clean track weighs 1/n of its hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from lkload.analysis.totals import pack_rows, unpack_keys
from lkload.metrics.schema import LOSS_DETAIL_PATTERN

if TYPE_CHECKING:
    from lkload.analysis.tiers import SampleArrays


@dataclass
class TrackLoss:
    """A tier's subscribed tracks' loss over its hold."""

    tracks: int  # subscriptions (subscriber, publisher, track) with loss rows in the hold
    worst_pct: float
    worst: str  # "subscriber ← publisher/track" of the worst one
    mean_pct: float  # over tracks, each its own hold loss: shown, decides nothing
    over: int = 0  # tracks whose hold loss reached the limit (set when judged)

    def describe(self) -> str:
        return (
            f"worst of {self.tracks:,} subscribed track{'s' if self.tracks != 1 else ''}: "
            f"{self.worst}; mean of tracks {self.mean_pct:.2f} %"
        )


def track_loss(a: SampleArrays) -> dict[int, TrackLoss]:
    """Per tier (>= 1): its tracks' hold loss; tiers without loss rows are absent."""
    return track_loss_of(track_loss_parts(a))


def track_loss_parts(a: SampleArrays) -> pd.DataFrame | None:
    """Per (tier, subscriber, publisher, track), the sums a tier's track loss is made of
    (pct_sum, lost, expected, counted, rows): sums of batches add up (a streamed analysis
    reads the samples batch by batch). None: no loss rows."""
    codes = a.codes_of(("loss_pct",))
    if not codes or a.n == 0:
        return None
    mask = a.metric == codes[0]
    mask &= a.is_hold
    mask &= a.ok
    mask &= np.isfinite(a.value)
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return None
    s = a.samples

    def codes_and_names(name: str) -> tuple[np.ndarray, Any]:
        """Category codes of the rows (strings only for the few distinct values)."""
        if name not in s.columns:
            return np.zeros(rows.size, np.int64), pd.Index([""])
        column = s[name]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("category")
        return column.array.codes[rows].astype(np.int64), column.cat.categories.astype(str)

    detail, details = codes_and_names("detail")
    parsed = pd.Series(details).str.extract(LOSS_DETAIL_PATTERN).astype(float).to_numpy()
    lost = np.where(detail >= 0, parsed[np.maximum(detail, 0), 0], np.nan)
    expected = np.where(detail >= 0, parsed[np.maximum(detail, 0), 1], np.nan)
    who, whos = codes_and_names("participant")
    pub, pubs = codes_and_names("publisher")
    track, tracks = codes_and_names("track")
    # grouped on one integer key of the codes (a string per row cost 0.15 s at 10 M
    # samples), then each group named: code -1 (no value) is ""
    columns = [a.tier[rows].astype(np.int64) + 2, who + 1, pub + 1, track + 1]
    packed = pack_rows(columns)
    if packed is None:
        stacked, group = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
        levels, group = list(stacked.T), group.reshape(-1)
    else:
        keys, group = np.unique(packed[0], return_inverse=True)
        levels = unpack_keys(keys, packed[1])
    counted = np.isfinite(expected)
    n = levels[0].size
    sums = pd.DataFrame(
        {
            "pct_sum": np.bincount(group, weights=a.value[rows], minlength=n),
            "lost": np.bincount(group, weights=np.where(counted, lost, 0.0), minlength=n),
            "expected": np.bincount(group, weights=np.where(counted, expected, 0.0), minlength=n),
            "counted": np.bincount(group[counted], minlength=n),
            "rows": np.bincount(group, minlength=n),
        }
    )
    tier, who_c, pub_c, track_c = levels
    names = [pd.Index((tier - 2).astype(np.int16))]
    for group_codes, named in ((who_c, whos), (pub_c, pubs), (track_c, tracks)):
        by_code = np.asarray(["", *map(str, named)], dtype=object)  # code + 1: 0 is ""
        names.append(pd.Index(by_code[group_codes]))
    sums.index = pd.MultiIndex.from_arrays(names, names=["tier", "who", "pub", "track"])
    # codes naming the same string (never from one reader) are one track
    return sums.groupby(level=[0, 1, 2, 3], sort=True).sum()


def track_loss_of(parts: pd.DataFrame | None) -> dict[int, TrackLoss]:
    """The tiers' track loss from `track_loss_parts` (of one frame, or summed batches)."""
    if parts is None or parts.empty:
        return {}
    per = parts
    with_counts = (per["counted"] == per["rows"]) & (per["expected"] > 0)
    mean = per["pct_sum"] / per["rows"]
    loss = mean.where(~with_counts, 100.0 * per["lost"] / per["expected"].where(with_counts))
    out: dict[int, TrackLoss] = {}
    for tier, part in loss.groupby(level="tier"):
        key = cast(tuple[Any, Any, Any, Any], part.idxmax())
        who_s, pub_s, track_s = str(key[1]), str(key[2]), str(key[3])
        name = f"{who_s} ← {pub_s}/{track_s}" if pub_s or track_s else who_s
        worst = float(part.max())
        out[int(cast(int, tier))] = TrackLoss(
            tracks=int(part.size),
            worst_pct=worst,
            worst=f"{name} {worst:.2f} %",
            mean_pct=float(part.mean()),
        )
    return out
