"""Recovery time after the highest tier.

The recovery phase (tier -1) drops to the first tier's size. Its samples are cut into
5 s windows starting every second; a window is within targets when every latency metric
with a P95 target has its P95 under it (judged on the max below 20 values, as the tiers
are: percentiles.MIN_VALUES) and each kind of attempt's error rate
(`kinds`) is within the normal budget. The phase is the recovery's time span from the
timeline: it ends where teardown starts. The recovery time is the start of the first
window from which every later window (with samples) stays within targets, measured from
the start of the phase. A recovery phase that ran without a sample in any window is NOT
MEASURED and `missing`: its data is lost, which makes the campaign INCONCLUSIVE; so is one
where a latency metric with a P95 target that flowed in tier 1's hold (data messages,
pings, the API) has no row in its last half where tier 1's rate promised some
(`_stopped`; media_e2e_ms is not expected: it depends on which publishers stayed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lkload.analysis.kinds import KINDS, attempt_mask
from lkload.analysis.percentiles import METHOD, MIN_VALUES
from lkload.analysis.tiers import SampleArrays
from lkload.analysis.verdict_types import Status, within
from lkload.analysis.windows import RECOVERY
from lkload.metrics.schema import ARRIVAL_METRICS, LATENCY_METRICS
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
        if v.size == 0:
            continue
        # a 5 s window holds few values of some metrics (pings): judged as the tiers are
        judged = v.max() if v.size < MIN_VALUES["p95"] else np.percentile(v, 95, method=METHOD)
        if not within(float(judged), limit):
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


# A metric whose rate in tier 1's hold promised at least this many rows in the recovery's
# last half yet gave none there stopped (Poisson P(0) at 10 is 5e-5).
MIN_EXPECTED = 10.0
# Rows written whatever the rooms: each participant's pings, the campaign's API calls. The
# recovery keeps tier 1's participant count, so tier 1's hold rate is the recovery's.
STEADY_METRICS = ("signal_rtt_ms", "api_ms")
# One row per message and receiver in the sender's room: Locust picks the participants that
# stay in the recovery at random, so their rooms differ from tier 1's; the rate scales with
# the ordered pairs of participants sharing a room.
PAIR_METRIC = "data_e2e_ms"


def _pairs(a: SampleArrays, rows: np.ndarray) -> int:
    """Ordered pairs of distinct participants sharing a room, among those of `rows`."""
    s = a.samples
    if rows.size == 0 or "room" not in s.columns or "participant" not in s.columns:
        return 0
    who = pd.DataFrame(
        {"room": s["room"].iloc[rows].astype(str), "p": s["participant"].iloc[rows].astype(str)}
    )
    who = who[who["p"] != ""].drop_duplicates()
    k = who.groupby("room").size().to_numpy(dtype=np.int64)
    return int((k * (k - 1)).sum())


def _stopped(
    a: SampleArrays, sel: np.ndarray, start: float, end: float, rates: dict[str, float]
) -> str:
    """A latency metric with a P95 target that flowed in tier 1's hold (`rates`: rows per
    second there) and should have flowed in the recovery's last half, with none there: ""
    when none. A dead data path writes no failure row until its participants leave (a
    receiver notices a missing message when a later one arrives), so the windows without
    it would read as within targets."""
    half = (end - start) / 2
    late = sel[a.t[sel] >= start + half]
    present = {a.metrics[c] for c in np.unique(a.metric[late]).tolist()}
    expected: dict[str, tuple[float, str]] = {
        m: (rates[m] * half, "tier 1's hold (same participant count)")
        for m in STEADY_METRICS
        if m in rates
    }
    if PAIR_METRIC in rates:
        joins = np.flatnonzero((a.tier == 1) & a.ok & np.isin(a.metric, a.codes_of(("join_ms",))))
        first, now = _pairs(a, joins), _pairs(a, late)
        if first and now:
            expected[PAIR_METRIC] = (
                rates[PAIR_METRIC] / first * now * half,
                f"tier 1's hold, per pair of participants in a room ({now} pairs now)",
            )
    for metric, (n, basis) in sorted(expected.items()):
        if metric in present or n < MIN_EXPECTED:
            continue
        return (
            f"no {metric} sample in the recovery's last {half:.0f} s, where {basis} promised "
            f"{n:.0f}: whether it came back after the load dropped is unknown"
        )
    return ""


def recovery_time(
    a: SampleArrays,
    start: float | None,
    end: float | None,
    targets: Targets,
    rates: dict[str, float] | None = None,
) -> Recovery:
    """`rates`: rows per second of each latency metric in tier 1's hold; one with a P95
    target that stops in the recovery leaves it NOT MEASURED (`_stopped`)."""
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
    if recovered_at is None:  # what it measured failed: a missing metric changes nothing
        return Recovery(
            Status.FAIL,
            f"not back within targets by the end of the {duration:.0f} s recovery phase",
            measured=True,
            duration_s=duration,
            samples=int(sel.size),
        )
    judged = {
        m: r
        for m, r in (rates or {}).items()
        if m in LATENCY_METRICS and m not in ARRIVAL_METRICS and targets.for_metric(m).p95
    }
    stopped = _stopped(a, sel, start, end, judged)
    if stopped:
        return Recovery(
            Status.NOT_MEASURED, stopped, duration_s=duration, samples=int(sel.size), missing=True
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
