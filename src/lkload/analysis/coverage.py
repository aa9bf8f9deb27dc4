"""How much of a span the monitors' 1 s rows cover (docs/report.md "Coverage").

A check on resources is only as good as the seconds it saw: two server rows in a 60 s hold
say nothing about the other 58, and a worker whose generator CPU never arrived may have been
saturated all along. So a resource check needs its rows to cover at least
`MIN_COVERAGE` of the seconds it speaks for, else it is NOT MEASURED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

from lkload.analysis.verdict_types import Check, Status

if TYPE_CHECKING:
    from lkload.analysis.tiers import SampleArrays

GENERATOR_CHECK = "generator_cpu"
MIN_COVERAGE = 0.8  # share of a span's seconds with a monitor reading near them
NEAR_S = 1.0  # a reading covers the seconds whose middle is this close (the monitors' period)


def covered(times: np.ndarray, start: float, end: float) -> tuple[int, int]:
    """(seconds of the span with a reading, seconds of the span): the span cut into whole
    seconds (at least one), each covered when a reading (`times`, unix s) lies within
    `NEAR_S` of its middle. Jitter in the monitor's period (1.05 s) loses nothing; two
    readings in a minute cover three seconds of it."""
    n = max(1, round(end - start))
    width = (end - start) / n if end > start else 0.0
    grid = start + (np.arange(n) + 0.5) * width
    t = np.sort(np.asarray(times, dtype=float))
    if t.size == 0:
        return 0, n
    i = np.searchsorted(t, grid)
    left = t[np.clip(i - 1, 0, t.size - 1)]
    right = t[np.clip(i, 0, t.size - 1)]
    near = np.minimum(np.abs(grid - left), np.abs(right - grid)) <= NEAR_S
    return int(near.sum()), n


K = TypeVar("K")
SPAN_CHUNK = 2_000_000  # rows keyed at a time: temporaries stay small at 10 M rows


def worker_first_last(
    a: SampleArrays, rows: np.ndarray, groups: np.ndarray
) -> dict[tuple[int, str], tuple[float, float]]:
    """(group, worker) -> the first and last `t` of `rows` (indices into `a`; finite t),
    `groups` a small non-negative int per row (a tier). Rows without a worker name (none
    written by lkload) are left out. One int key per row and numpy's minimum.at/maximum.at:
    a tenth of a pandas group-by's time."""
    column = a.samples["worker"]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype("category")
    names = column.cat.categories.astype(str)
    width = len(names) + 1
    size = (int(groups.max()) + 1) * width if groups.size else 0
    first, last = np.full(size, np.inf), np.full(size, -np.inf)
    for lo in range(0, rows.size, SPAN_CHUNK):
        part = rows[lo : lo + SPAN_CHUNK]
        key = groups[lo : lo + SPAN_CHUNK].astype(np.intp) * width
        key += column.array.codes[part].astype(np.intp) + 1  # -1 (no name) -> 0
        t = a.t[part]
        np.minimum.at(first, key, t)
        np.maximum.at(last, key, t)
    out: dict[tuple[int, str], tuple[float, float]] = {}
    for k in np.flatnonzero(first <= last).tolist():
        group, code = divmod(k, width)
        if code >= 1 and (name := str(names[code - 1])):
            out[(group, name)] = (float(first[k]), float(last[k]))
    return out


def merge_spans(
    into: dict[K, tuple[float, float]], batch: dict[K, tuple[float, float]]
) -> dict[K, tuple[float, float]]:
    """`into` widened by `batch`'s spans (first, last) key by key: spans of batches of
    rows merge into the spans of all their rows."""
    for key, (first, last) in batch.items():
        was = into.get(key)
        into[key] = (first, last) if was is None else (min(was[0], first), max(was[1], last))
    return into


def worker_spans(a: SampleArrays) -> dict[int, dict[str, tuple[float, float]]]:
    """Per tier: each worker that wrote samples in its hold, with its first and last
    sample's t there. Rows without a worker name (none written by lkload) are left out."""
    if a.n == 0 or "worker" not in a.samples.columns:
        return {}
    rows = np.flatnonzero(a.is_hold & (a.tier >= 1))
    if rows.size == 0:
        return {}
    out: dict[int, dict[str, tuple[float, float]]] = {}
    for (tier, worker), span in sorted(worker_first_last(a, rows, a.tier[rows]).items()):
        out.setdefault(tier, {})[worker] = span
    return out


def generator_check(coverage: dict[str, tuple[int, int]]) -> Check | None:
    """'generator CPU': every worker (or the local generator) that wrote samples in the
    hold has generator:<worker> rows over `MIN_COVERAGE` of the seconds from its first to
    its last sample there (`coverage`: worker -> (seconds with a row, seconds)); else NOT
    MEASURED (saturation cannot be ruled out, so the tier cannot PASS). None when no worker
    wrote samples in the hold."""
    if not coverage:
        return None
    missing = [
        f"{worker} {seen} of {total} s"
        for worker, (seen, total) in sorted(coverage.items())
        if seen < MIN_COVERAGE * total
    ]
    if missing:
        return Check(
            GENERATOR_CHECK,
            "generator CPU",
            Status.NOT_MEASURED,
            note=(
                f"rows cover less than {MIN_COVERAGE * 100:.0f} % of the seconds its worker wrote "
                f"samples in the hold ({', '.join(missing)}): whether the generator "
                "saturated (and measured itself) is unknown"
            ),
        )
    return Check(
        GENERATOR_CHECK,
        "generator CPU",
        Status.PASS,
        note=f"recorded for {len(coverage)} generator{'s' if len(coverage) != 1 else ''} "
        "while they wrote samples (saturation judged apart)",
    )
