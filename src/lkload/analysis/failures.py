"""Failure modes: each failure kind with its count, first tier and first occurrence, and
within a kind each distinct cause (the rows' `detail`) with the same, so a report says
"Redis down" or "certificate" and not only `api` or `signal`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lkload.analysis.tiers import SampleArrays

# At most this many causes per kind are listed; the rest are counted together.
MAX_DETAILS_PER_KIND = 8
OTHER_DETAILS = "other causes"

# Participant identities and LiveKit sids differ from row to row for the same cause.
_VARYING = re.compile(r"\b(PA|TR|RM|SR|EG|IN)_[A-Za-z0-9]{4,}\b|\bp\d{5}\b")


@dataclass
class FailureDetail:
    """One cause of failures of one kind."""

    detail: str  # "" when the rows carry none (schema v1 results, or an engine gave none)
    count: int
    first_tier: int
    first_t: float
    first_offset_s: float | None
    metric: str
    worker: str
    room: str
    participant: str


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
    details: list[FailureDetail] = field(default_factory=list)  # most frequent first


def cause(detail: str) -> str:
    """A detail with what varies per participant masked, so one cause is one group."""
    return _VARYING.sub(lambda m: f"{m.group(1)}_…" if m.group(1) else "p…", detail)


def failure_modes(a: SampleArrays, campaign_start: float | None) -> list[FailureMode]:
    failed = np.flatnonzero(~a.ok)
    if failed.size == 0:
        return []
    s = a.samples
    codes = a.error[failed]
    details = s["detail"] if "detail" in s.columns else None
    modes = []
    for code in np.unique(codes).tolist():
        rows = failed[codes == code]
        first = int(rows[np.argmin(a.t[rows])])
        tiers, counts = np.unique(a.tier[rows], return_counts=True)
        where = _where(a, first, campaign_start)
        modes.append(
            FailureMode(
                kind=(a.errors[code] if 0 <= code < len(a.errors) else "") or "unknown",
                count=int(rows.size),
                first_tier=where.first_tier,
                first_t=where.first_t,
                first_offset_s=where.first_offset_s,
                metric=where.metric,
                worker=where.worker,
                room=where.room,
                participant=where.participant,
                by_tier={
                    int(t): int(c) for t, c in zip(tiers.tolist(), counts.tolist(), strict=True)
                },
                details=_details(a, rows, details, campaign_start),
            )
        )
    return sorted(modes, key=lambda m: m.first_t)


def _where(a: SampleArrays, row: int, campaign_start: float | None) -> FailureDetail:
    s = a.samples
    t0 = float(a.t[row])
    return FailureDetail(
        detail="",
        count=0,
        first_tier=int(a.tier[row]),
        first_t=t0,
        first_offset_s=None if campaign_start is None else t0 - campaign_start,
        metric=str(s["metric"].iat[row]),
        worker=str(s["worker"].iat[row]),
        room=str(s["room"].iat[row]),
        participant=str(s["participant"].iat[row]),
    )


def _by_cause(rows: np.ndarray, details: pd.Series) -> dict[str, np.ndarray]:
    """The rows grouped by cause, in the order each cause first appears. Each distinct
    detail is masked once (not once per row): failures can be millions."""
    if not isinstance(details.dtype, pd.CategoricalDtype):
        details = details.astype("category")
    codes = details.array.codes[rows]
    categories = details.cat.categories
    distinct, inverse = np.unique(codes, return_inverse=True)
    texts = [cause(str(categories[c]) if c >= 0 else "nan") for c in distinct.tolist()]
    ids: dict[str, int] = {}
    text_id = np.array([ids.setdefault(text, len(ids)) for text in texts], dtype=np.int64)
    row_text = text_id[inverse]
    names = list(ids)
    present, first = np.unique(row_text, return_index=True)
    return {names[i]: rows[row_text == i] for i in present[np.argsort(first)].tolist()}


def _details(
    a: SampleArrays, rows: np.ndarray, details: pd.Series | None, campaign_start: float | None
) -> list[FailureDetail]:
    """The causes of one kind's failure rows, most frequent first (ties: earliest)."""
    groups = {"": rows} if details is None else _by_cause(rows, details)
    out = []
    for text, idx in groups.items():
        first = int(idx[np.argmin(a.t[idx])])
        d = _where(a, first, campaign_start)
        d.detail, d.count = text, int(idx.size)
        out.append(d)
    out.sort(key=lambda d: (-d.count, d.first_t))
    if len(out) > MAX_DETAILS_PER_KIND:
        rest = out[MAX_DETAILS_PER_KIND - 1 :]
        oldest = min(rest, key=lambda d: d.first_t)
        oldest.detail = f"{OTHER_DETAILS} ({len(rest)})"
        oldest.count = sum(d.count for d in rest)
        out = [*out[: MAX_DETAILS_PER_KIND - 1], oldest]
    return out
