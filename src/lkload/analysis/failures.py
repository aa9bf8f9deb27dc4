"""Failure modes: each failure kind with its count, first tier and first occurrence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lkload.analysis.tiers import SampleArrays


@dataclass
class FailureMode:
    kind: str
    count: int
    first_tier: int  # by time: 0 before tier 1 (or between spans), -1 recovery, -2 teardown
    first_t: float  # unix seconds
    first_offset_s: float | None  # seconds after the campaign started
    metric: str
    worker: str
    room: str
    participant: str
    by_tier: dict[int, int]


def failure_modes(a: SampleArrays, campaign_start: float | None) -> list[FailureMode]:
    failed = np.flatnonzero(~a.ok)
    if failed.size == 0:
        return []
    s = a.samples
    codes = a.error[failed]
    modes = []
    for code in np.unique(codes).tolist():
        rows = failed[codes == code]
        first = int(rows[np.argmin(a.t[rows])])
        tiers, counts = np.unique(a.tier[rows], return_counts=True)
        t0 = float(a.t[first])
        modes.append(
            FailureMode(
                kind=(a.errors[code] if 0 <= code < len(a.errors) else "") or "unknown",
                count=int(rows.size),
                first_tier=int(a.tier[first]),
                first_t=t0,
                first_offset_s=None if campaign_start is None else t0 - campaign_start,
                metric=str(s["metric"].iat[first]),
                worker=str(s["worker"].iat[first]),
                room=str(s["room"].iat[first]),
                participant=str(s["participant"].iat[first]),
                by_tier={
                    int(t): int(c) for t, c in zip(tiers.tolist(), counts.tolist(), strict=True)
                },
            )
        )
    return sorted(modes, key=lambda m: m.first_t)
