"""Transport mix: per tier, how many participants' media ran over ICE/UDP, ICE/TCP or a
TURN relay (one `transport_*` row per joined participant, written by both engines). A
deployment whose clients fall back to TCP or TURN behaves differently under load."""

from __future__ import annotations

import numpy as np

from lkload.analysis.tiers import SampleArrays
from lkload.metrics.schema import TRANSPORT_METRICS

_NAMES = {metric: transport for transport, metric in TRANSPORT_METRICS.items()}


def transport_mix(a: SampleArrays) -> dict[int, dict[str, int]]:
    """tier -> transport -> participants that joined in that tier over it (the tier of the
    row: the tier during whose ramp, settle or hold the participant connected)."""
    out: dict[int, dict[str, int]] = {}
    for code, metric in enumerate(a.metrics):
        transport = _NAMES.get(metric)
        if transport is None:
            continue
        tiers, counts = np.unique(a.tier[(a.metric == code) & a.ok], return_counts=True)
        for tier, count in zip(tiers.tolist(), counts.tolist(), strict=True):
            out.setdefault(int(tier), {})[transport] = int(count)
    return dict(sorted(out.items()))
