"""Recovery time after the highest tier.

The recovery phase (tier -1) drops to the first tier's size. Its samples are cut into
5 s windows starting every second; a window is within targets when every latency metric
with a P95 target has its P95 at or under it and each kind of attempt's error rate
(`kinds`) is within the normal budget. The phase is the recovery's time span from the
timeline: it ends where teardown starts. The recovery time is the start of the first
window from which every later window (with samples) stays within targets, measured from
the start of the phase. A recovery phase that ran without a sample in any window is NOT
MEASURED and `missing`: its data is lost, which makes the campaign INCONCLUSIVE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lkload.analysis.kinds import KINDS, attempt_mask
from lkload.analysis.tiers import SampleArrays
from lkload.analysis.verdict_types import Status, within
from lkload.analysis.windows import RECOVERY
from lkload.metrics.schema import LATENCY_METRICS
from lkload.scenario.model import Targets

WINDOW_S = 5.0
STEP_S = 1.0


@dataclass
class Recovery:
    status: Status
    evidence: str
    measured: bool = False
    recovered: bool = False
    recovery_s: float | None = None
    duration_s: float | None = None
    samples: int = 0
    # the phase ran but no window of it has a sample (data lost): INCONCLUSIVE
    missing: bool = False


def _window_ok(a: SampleArrays, idx: np.ndarray, targets: Targets) -> bool | None:
    if idx.size == 0:
        return None
    ok = a.ok[idx]
    metric = a.metric[idx]
    kind = a.kind_lut[metric]
    attempts = np.bincount(kind[attempt_mask(metric, ok, a.ok_attempt_lut)], minlength=len(KINDS))
    failures = np.bincount(kind[~ok], minlength=len(KINDS))
    # strict budgets (verdict_types.within): a rate at the budget is not back within it
    budget = targets.error_rate.normal
    if np.any((failures > 0) & (failures >= budget * attempts)):
        return False
    values = a.value[idx]
    for code in np.unique(metric[ok]).tolist():
        name = a.metrics[code]
        if name not in LATENCY_METRICS:
            continue
        limit = targets.for_metric(name).p95
        if limit is None:
            continue
        v = values[ok & (metric == code)]
        v = v[np.isfinite(v)]
        if v.size and not within(float(np.percentile(v, 95, method="linear")), limit):
            return False
    return True


def _missing(start: float | None, end: float | None, samples: int = 0) -> Recovery:
    """The recovery phase ran (the timeline says so) yet no window of it has a sample: its
    data is missing, so nothing shows the server came back (the campaign is INCONCLUSIVE)."""
    ran = f"ran ({end - start:.0f} s)" if start is not None and end is not None else "started"
    return Recovery(
        Status.NOT_MEASURED,
        f"the recovery phase {ran} but recorded no samples"
        + (f" in its windows ({samples} in its last second)" if samples else "")
        + ": its data is missing",
        missing=True,
        samples=samples,
    )


def recovery_time(
    a: SampleArrays, start: float | None, end: float | None, targets: Targets
) -> Recovery:
    sel = np.flatnonzero(a.phase == RECOVERY) if a.n else np.empty(0, dtype=np.int64)
    if start is None and sel.size == 0:
        return Recovery(Status.NOT_MEASURED, "no recovery phase in this campaign")
    if sel.size == 0:
        return _missing(start, end)
    t = a.t[sel]
    start = float(t.min()) if start is None else start
    end = float(t.max()) if end is None else end
    order = np.argsort(t, kind="stable")
    sel, t = sel[order], t[order]
    duration = end - start
    n_windows = max(1, int(np.floor(max(0.0, duration - WINDOW_S) / STEP_S)) + 1)
    results: list[tuple[float, bool]] = []
    for k in range(n_windows):
        w0 = start + k * STEP_S
        lo, hi = np.searchsorted(t, [w0, w0 + WINDOW_S])
        ok = _window_ok(a, sel[lo:hi], targets)
        if ok is not None:
            results.append((w0 - start, ok))
    if not results:
        return _missing(start, end, int(sel.size))
    recovered_at = None
    for offset, ok in reversed(results):
        if not ok:
            break
        recovered_at = offset
    if recovered_at is None:
        return Recovery(
            Status.FAIL,
            f"not back within targets by the end of the {duration:.0f} s recovery phase",
            measured=True,
            duration_s=duration,
            samples=int(sel.size),
        )
    return Recovery(
        Status.PASS,
        f"P95 and every kind's error rate back within targets {recovered_at:.0f} s after the "
        f"load dropped ({WINDOW_S:.0f} s windows, phase {duration:.0f} s)",
        measured=True,
        recovered=True,
        recovery_s=recovered_at,
        duration_s=duration,
        samples=int(sel.size),
    )
