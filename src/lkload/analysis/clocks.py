"""End-to-end latencies that read negative: the clocks disagree (docs/metrics.md "Clocks").

`data_e2e_ms` and `media_e2e_ms` are the subscriber's clock at arrival minus the
publisher's clock at sending (capture). Within one process the clock is one clock; across
workers (hosts) they agree only as well as NTP keeps them. A value below
-`RESOLUTION_MS` is impossible as a latency: it proves the two clocks disagree by at least
its magnitude, and the other values of that metric are off by an unknown amount too, in
either direction. So a tier with any such value of an e2e metric does not judge that
metric's latency at all: it gets one NOT MEASURED check "clocks disagree by ≥ X ms" instead
(never a PASS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lkload.analysis.verdict_types import Check, Status

if TYPE_CHECKING:
    from lkload.analysis.tiers import SampleArrays

E2E_METRICS = ("data_e2e_ms", "media_e2e_ms")
# Below this a negative value proves two clocks disagree; above it, it is the measurement's
# own resolution: aiortc publishers stamp a frame's capture time as the wall clock at start
# plus the event loop's monotonic time since, and the wall clock the subscriber reads meanwhile
# is slewed by NTP: on one host, media_e2e_ms read down to -0.7 ms (the distributed and
# browser campaign tests, 2026-11-28). 5 ms is under 5 % of the smallest latency target.
RESOLUTION_MS = 5.0
CLOCKS_PREFIX = "clocks:"


@dataclass
class NegativeLatency:
    """An e2e metric's negative values in one tier's hold."""

    metric: str
    negatives: int
    count: int  # every value of the metric judged in the hold
    min_ms: float  # the most negative: the clocks disagree by at least its magnitude
    workers: list[str]  # the subscribers' workers that measured them

    def check(self) -> Check:
        where = f" (measured on {', '.join(self.workers)})" if self.workers else ""
        return Check(
            CLOCKS_PREFIX + self.metric,
            f"{self.metric} clocks",
            Status.NOT_MEASURED,
            note=(
                f"{self.negatives:,} of {self.count:,} {self.metric} values below "
                f"-{RESOLUTION_MS:g} ms, down to {self.min_ms:.1f} ms{where}: publisher's "
                f"and subscriber's clocks disagree by ≥ {-self.min_ms:.1f} ms, so no value "
                "of it is a latency; sync the clocks of every host (NTP) and run again"
            ),
        )


def negative_latencies(a: SampleArrays) -> dict[int, dict[str, NegativeLatency]]:
    """Per tier (>= 1): each e2e metric with ok values below -RESOLUTION_MS in its hold."""
    out: dict[int, dict[str, NegativeLatency]] = {}
    if a.n == 0:
        return out
    for code in a.codes_of(E2E_METRICS):
        rows = a.metric == code
        rows &= a.is_hold
        rows &= a.tier >= 1
        rows &= a.ok
        rows &= np.isfinite(a.value)
        idx = np.flatnonzero(rows)
        if idx.size == 0:
            continue
        neg = a.value[idx] < -RESOLUTION_MS
        if not neg.any():
            continue
        tiers = a.tier[idx]
        workers = (
            a.samples["worker"].iloc[idx[neg]].astype(str).to_numpy()
            if "worker" in a.samples.columns
            else np.full(int(neg.sum()), "", dtype=object)
        )
        for tier in np.unique(tiers[neg]).tolist():
            mine = tiers == tier
            bad = mine & neg
            out.setdefault(int(tier), {})[a.metrics[code]] = NegativeLatency(
                metric=a.metrics[code],
                negatives=int(bad.sum()),
                count=int(mine.sum()),
                min_ms=float(a.value[idx][bad].min()),
                workers=sorted(set(workers[tiers[neg] == tier].tolist()) - {""}),
            )
    return out
