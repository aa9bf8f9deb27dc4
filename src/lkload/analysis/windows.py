"""When each phase ran, from the timeline's phase events (or, without any, the samples' tags).

A row belongs to the phase whose measured time span contains its `t`, never to the phase it
was tagged with: rows written late (a session's end, a join cancelled at stop, a worker's
batch) are judged where they happened. Spans: each tier's ramp and settle (its arrivals),
its hold, the recovery, and the teardown — from the teardown `phase` event (or, in results
written before it existed, the last tier's or the recovery's `tier_end`, else the first
`abort` after the last phase began, else `campaign_end`) until the end. Teardown rows are
reported, never judged; the recovery ends where teardown starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lkload.analysis.load import Results


@dataclass
class TierWindow:
    tier: int  # 1-based
    size: int
    role: str
    ramp_start: float | None = None
    hold_start: float | None = None
    hold_end: float | None = None
    ended: bool = False  # a tier_end event was written
    connected: int | None = None  # participants connected at tier_end

    @property
    def hold_s(self) -> float:
        if self.hold_start is None or self.hold_end is None:
            return 0.0
        return max(0.0, self.hold_end - self.hold_start)

    @property
    def arrival_s(self) -> float:
        """Ramp plus settle: the window in which arrival metrics of this tier happened."""
        if self.ramp_start is None:
            return 0.0
        end = self.hold_start if self.hold_start is not None else self.hold_end
        return max(0.0, (end or self.ramp_start) - self.ramp_start)


@dataclass
class Windows:
    tiers: list[TierWindow]
    recovery_start: float | None
    recovery_end: float | None
    start: float | None  # campaign start
    end: float | None  # last thing recorded
    server_died_t: float | None
    teardown_start: float | None = None  # None: no teardown recorded (e.g. a crash)
    teardown_event: bool = False  # the engine wrote a `teardown` phase event (else inferred)
    from_timeline: bool = True  # spans from the timeline's phase events, else the tags

    def spans(self) -> list[Span]:
        """The judging windows in time order (see the module's docstring)."""
        out: list[Span] = []
        for w in self.tiers:
            if w.ramp_start is not None:
                end = w.hold_start if w.hold_start is not None else math.inf
                out.append(Span(w.ramp_start, end, w.tier, ARRIVAL))
            if w.hold_start is not None:
                end = w.hold_end if w.hold_end is not None else math.inf
                out.append(Span(w.hold_start, end, w.tier, HOLD))
        if self.recovery_start is not None:
            end = self.recovery_end if self.recovery_end is not None else math.inf
            out.append(Span(self.recovery_start, end, RECOVERY_TIER, RECOVERY))
        if self.teardown_start is not None:
            out.append(Span(self.teardown_start, math.inf, TEARDOWN_TIER, TEARDOWN))
        return sorted(out, key=lambda s: s.start)


# Span phases: a row outside every span (before tier 1, in a gap) is in NONE.
NONE, ARRIVAL, HOLD, RECOVERY, TEARDOWN = 0, 1, 2, 3, 4
RECOVERY_TIER, TEARDOWN_TIER = -1, -2  # tier numbers of rows in those spans (0: none)
_TAG_PHASE = {"ramp": ARRIVAL, "settle": ARRIVAL, "hold": HOLD, "recovery": RECOVERY}
_TAG_PHASE["teardown"] = TEARDOWN


@dataclass
class Span:
    start: float
    end: float  # exclusive; a later span's start also ends it
    tier: int  # 1-based, RECOVERY_TIER or TEARDOWN_TIER
    phase: int  # ARRIVAL, HOLD, RECOVERY, TEARDOWN


_CHUNK = 1 << 21  # rows per searchsorted call: bounded temporaries on 10 M rows


def assign_rows(
    windows: Windows, t: np.ndarray, tier_tags: np.ndarray, phase_tags: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (tier, span phase) by its time: int16 tier (0 outside every span) and
    int8 phase (NONE, ARRIVAL, HOLD, RECOVERY, TEARDOWN). Without phase events in the
    timeline, the rows' own tier and phase tags."""
    n = t.size
    if not windows.from_timeline:
        cats = [str(c) for c in phase_tags.cat.categories]
        lut = np.array([_TAG_PHASE.get(c, NONE) for c in cats] + [NONE], dtype=np.int8)
        phase = lut[phase_tags.array.codes]  # code -1 (missing) reads the last entry
        tier = np.where(phase == NONE, 0, tier_tags).astype(np.int16)
        tier[phase == TEARDOWN] = TEARDOWN_TIER
        return tier, phase
    starts: list[float] = []
    tiers: list[int] = [0]  # index 0: before the first span
    phases: list[int] = [NONE]
    spans = windows.spans()
    for i, s in enumerate(spans):
        starts.append(s.start)
        tiers.append(s.tier)
        phases.append(s.phase)
        following = spans[i + 1].start if i + 1 < len(spans) else math.inf
        if s.end < following:  # a gap until the next span
            starts.append(s.end)
            tiers.append(0)
            phases.append(NONE)
    bounds = np.asarray(starts, dtype=np.float64)
    tier_lut = np.asarray(tiers, dtype=np.int16)
    phase_lut = np.asarray(phases, dtype=np.int8)
    tier = np.empty(n, dtype=np.int16)
    phase = np.empty(n, dtype=np.int8)
    for lo in range(0, n, _CHUNK):
        idx = np.searchsorted(bounds, t[lo : lo + _CHUNK], side="right")
        tier[lo : lo + _CHUNK] = tier_lut[idx]
        phase[lo : lo + _CHUNK] = phase_lut[idx]
    return tier, phase


def _data_end(results: Results) -> float | None:
    ends = []
    if len(results.samples):
        ends.append(float(results.samples["t"].max()))
    if len(results.resources):
        ends.append(float(results.resources["t"].max()))
    if results.timeline:
        ends.append(float(results.timeline[-1]["t"]))
    ended = results.campaign.get("ended")
    if isinstance(ended, int | float):
        ends.append(float(ended))
    return max(ends) if ends else None


def _data_start(results: Results) -> float | None:
    started = results.campaign.get("started")
    if isinstance(started, int | float):
        return float(started)
    starts = []
    if len(results.samples):
        starts.append(float(results.samples["t"].min()))
    if results.timeline:
        starts.append(float(results.timeline[0]["t"]))
    return min(starts) if starts else None


def _planned_tiers(results: Results) -> list[tuple[int, str]]:
    if results.scenario is not None:
        return [(t.size, t.role.value) for t in results.scenario.tiers]
    for event in results.timeline:
        if event.get("event") == "campaign_start" and isinstance(event.get("tiers"), list):
            return [(int(s), "") for s in event["tiers"]]
    return []


def tier_windows(results: Results) -> Windows:
    planned = _planned_tiers(results)
    tiers = {i + 1: TierWindow(i + 1, size, role) for i, (size, role) in enumerate(planned)}
    timeline = results.timeline
    phase_events = sorted(
        (e for e in timeline if e.get("event") == "phase" and _is_time(e.get("t"))),
        key=lambda e: float(e["t"]),
    )
    end = _data_end(results)
    # "server_died": the name before results schema 2
    server_died = next(
        (float(e["t"]) for e in timeline if e.get("event") in ("server_lost", "server_died")),
        None,
    )

    def window(n: int, size: Any = None) -> TierWindow:
        if n not in tiers:
            tiers[n] = TierWindow(n, int(size) if isinstance(size, int) else 0, "")
        return tiers[n]

    recovery_start = None
    teardown_start = next(
        (float(e["t"]) for e in phase_events if e.get("phase") == "teardown"), None
    )
    for i, event in enumerate(phase_events):
        tier, phase, t = event.get("tier"), event.get("phase"), float(event["t"])
        if phase == "teardown":
            continue
        if phase == "recovery":
            recovery_start = t if recovery_start is None else recovery_start
            continue
        if not isinstance(tier, int) or tier < 1:
            continue
        w = window(tier, event.get("size"))
        if phase in ("ramp", "settle") and w.ramp_start is None:
            w.ramp_start = t
        elif phase == "hold" and w.hold_start is None:
            w.hold_start = t
            later = phase_events[i + 1 :]
            w.hold_end = float(later[0]["t"]) if later else None
    recovery_end = None
    for event in timeline:
        # The recovery phase ends with a tier_end of tier -1: it is not a tier.
        tier = event.get("tier")
        if event.get("event") != "tier_end" or not isinstance(tier, int):
            continue
        if tier == -1 and recovery_start is not None and _is_time(event.get("t")):
            recovery_end = float(event["t"])
        if tier < 1:
            continue
        w = window(tier, event.get("size"))
        w.ended = True
        w.hold_end = float(event["t"]) if w.hold_start is not None else w.hold_end
        if isinstance(event.get("connected"), int):
            w.connected = event["connected"]
    teardown_event = teardown_start is not None
    if teardown_start is None and phase_events:
        teardown_start = _inferred_teardown(timeline, phase_events[-1], recovery_end)
    _fill_from_samples(results, tiers)
    for w in tiers.values():
        if w.hold_start is not None and w.hold_end is None:
            w.hold_end = teardown_start if teardown_start is not None else end
        if teardown_start is not None and w.hold_end is not None and w.hold_start is not None:
            w.hold_end = max(w.hold_start, min(w.hold_end, teardown_start))
        if server_died is not None and w.hold_end is not None and w.hold_start is not None:
            w.hold_end = (
                max(w.hold_start, min(w.hold_end, server_died)) if not w.ended else w.hold_end
            )
    if recovery_start is not None:
        recovery_end = teardown_start if teardown_start is not None else (recovery_end or end)
    else:
        rec = results.samples["t"].to_numpy()[results.samples["tier"].to_numpy() == -1]
        if rec.size:
            recovery_start, recovery_end = float(rec.min()), float(rec.max())
    return Windows(
        tiers=[tiers[k] for k in sorted(tiers)],
        recovery_start=recovery_start,
        recovery_end=recovery_end,
        start=_data_start(results),
        end=end,
        server_died_t=server_died,
        teardown_start=teardown_start,
        teardown_event=teardown_event,
        from_timeline=bool(phase_events),
    )


def _is_time(t: Any) -> bool:
    return isinstance(t, int | float) and math.isfinite(t)


def _inferred_teardown(
    timeline: list[dict[str, Any]], last_phase: dict[str, Any], recovery_end: float | None
) -> float | None:
    """Results written before the engine wrote a teardown phase event: teardown began when
    the last phase ended (its tier_end), when the campaign was stopped (the first abort
    after the last phase began) or, failing both, at campaign_end; None after a crash."""
    since = float(last_phase["t"])
    tier = -1 if last_phase.get("phase") == "recovery" else last_phase.get("tier")
    ends = [
        float(e["t"])
        for e in timeline
        if _is_time(e.get("t"))
        and float(e["t"]) >= since
        and (
            (e.get("event") == "tier_end" and e.get("tier") == tier)
            or e.get("event") in ("abort", "campaign_end")
        )
    ]
    if tier == -1 and recovery_end is not None:
        ends.append(recovery_end)
    return min(ends) if ends else None


def _fill_from_samples(results: Results, tiers: dict[int, TierWindow]) -> None:
    """Tiers the timeline does not describe: take the windows from the samples' own phases."""
    s = results.samples
    if not len(s):
        return
    tier = s["tier"].to_numpy()
    t = s["t"].to_numpy()
    cats = list(s["phase"].cat.categories)
    codes = s["phase"].array.codes
    hold_code = cats.index("hold") if "hold" in cats else -2
    present = np.unique(tier)
    for n in present.tolist():
        if n < 1:
            continue
        w = tiers.get(n) or tiers.setdefault(n, TierWindow(n, 0, ""))
        if w.hold_start is not None and w.ramp_start is not None:
            continue
        in_tier = tier == n
        if w.ramp_start is None:
            w.ramp_start = float(t[in_tier].min())
        if w.hold_start is None:
            hold_t = t[in_tier & (codes == hold_code)]
            if hold_t.size:
                w.hold_start, w.hold_end = float(hold_t.min()), float(hold_t.max())
