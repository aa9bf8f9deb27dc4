"""When each tier's ramp, settle and hold ran, from the timeline (or the samples)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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
    phase_events = [e for e in results.timeline if e.get("event") == "phase"]
    end = _data_end(results)
    server_died = next(
        (float(e["t"]) for e in results.timeline if e.get("event") == "server_died"), None
    )

    def window(n: int, size: Any = None) -> TierWindow:
        if n not in tiers:
            tiers[n] = TierWindow(n, int(size) if isinstance(size, int) else 0, "")
        return tiers[n]

    recovery_start = None
    for i, event in enumerate(phase_events):
        tier, phase, t = event.get("tier"), event.get("phase"), float(event["t"])
        if phase == "recovery":
            recovery_start = t
            continue
        if not isinstance(tier, int) or tier < 1:
            continue
        w = window(tier, event.get("size"))
        if phase == "ramp" and w.ramp_start is None or phase == "settle" and w.ramp_start is None:
            w.ramp_start = t
        elif phase == "hold" and w.hold_start is None:
            w.hold_start = t
            later = phase_events[i + 1 :]
            w.hold_end = float(later[0]["t"]) if later else None
    for event in results.timeline:
        # The recovery phase ends with a tier_end of tier -1: it is not a tier.
        if (
            event.get("event") == "tier_end"
            and isinstance(event.get("tier"), int)
            and event["tier"] >= 1
        ):
            w = window(event["tier"], event.get("size"))
            w.ended = True
            w.hold_end = float(event["t"]) if w.hold_start is not None else w.hold_end
            if isinstance(event.get("connected"), int):
                w.connected = event["connected"]
    _fill_from_samples(results, tiers)
    for w in tiers.values():
        if w.hold_start is not None and w.hold_end is None:
            w.hold_end = end
        if server_died is not None and w.hold_end is not None and w.hold_start is not None:
            w.hold_end = (
                max(w.hold_start, min(w.hold_end, server_died)) if not w.ended else w.hold_end
            )
    recovery_end = end if recovery_start is not None else None
    if recovery_start is None:
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
    )


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
