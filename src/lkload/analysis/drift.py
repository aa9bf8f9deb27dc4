"""A worker whose clock moved after the master measured it (docs/report.md "Worker clocks").

The master measures each worker's clock when it connects and refuses one more than 50 ms
off (docs/distributed.md "Clocks"); a clock stepped later (NTP step, a VM paused and
resumed, a manual change) goes unseen there. Rows are placed in phases by their own `t`
(windows.py), so such a worker's rows land in the wrong phase — its failures in the target
hold judged as teardown, say — and nothing would tell.

Each row also carries the tier and phase the worker was in when it wrote it (the master's
phase messages set them), and its `t` is the worker's clock at that moment. An ok row's `t`
is when it was written (or when what it measured arrived, an instant before; media_e2e_ms
rows, written seconds after their frame arrived, are left out), so a worker
whose clock agrees with the master's writes its rows tagged with a tier's hold inside that
hold as the master's timeline records it, give or take the phase message's flight and
the worker's event-loop lag. A row tagged with a hold more than `SLACK_S` before that hold
began, or after it ended, proves the worker's clock disagrees with the master's by at least
that much: its rows cannot be placed, and the campaign is INCONCLUSIVE. Failure rows are
left out: some carry the time a loss was noticed, seconds before they are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lkload.analysis.coverage import worker_first_last
from lkload.analysis.windows import Windows
from lkload.metrics.schema import STALL_METRIC

if TYPE_CHECKING:
    from lkload.analysis.tiers import SampleArrays

# A phase message's flight plus a worker's event-loop lag stay well under this.
SLACK_S = 5.0
# Ok rows whose `t` is when what they measured happened, seconds before they are written:
# a frame's arrival, mapped to its capture time once the sender's reports allow (up to
# 4.9 s before its row in real single-process runs, 2026-11-28).
WRITTEN_LATER = ("media_e2e_ms", STALL_METRIC)

# (worker, tier tag) -> first and last t of its ok rows tagged with that tier's hold
TaggedSpans = dict[tuple[str, int], tuple[float, float]]


def tagged_hold_spans(a: SampleArrays) -> TaggedSpans:
    """Each worker's first and last ok row tagged with each tier's hold (by its tags, not
    by time)."""
    s = a.samples
    if a.n == 0 or "worker" not in s.columns or "phase" not in s.columns:
        return {}
    phases = [str(c) for c in s["phase"].cat.categories]
    if "hold" not in phases:
        return {}
    rows = a.ok & (s["phase"].array.codes == phases.index("hold")) & (a.tier_tag >= 1)
    rows &= ~np.isin(a.metric, a.codes_of(WRITTEN_LATER))
    rows &= np.isfinite(a.t)  # a row read without its time places nothing
    idx = np.flatnonzero(rows)
    if idx.size == 0:
        return {}
    spans = worker_first_last(a, idx, a.tier_tag[idx])
    return {(worker, tier): span for (tier, worker), span in sorted(spans.items())}


@dataclass
class Drift:
    """A worker whose rows tagged with a tier's hold lie outside it by the master's clock."""

    worker: str
    tier: int
    before_s: float  # its earliest such row, this long before the hold began (else 0)
    after_s: float  # its latest, this long after the hold ended (else 0)

    def describe(self) -> str:
        parts = []
        if self.before_s > SLACK_S:
            parts.append(f"up to {self.before_s:.1f} s before that hold began")
        if self.after_s > SLACK_S:
            parts.append(f"up to {self.after_s:.1f} s after it ended")
        return (
            f"worker {self.worker}'s clock disagrees with the master's by ≥ "
            f"{max(self.before_s, self.after_s):.1f} s: its rows tagged tier {self.tier}'s "
            f"hold lie {' and '.join(parts)} by the master's timeline (more than "
            f"{SLACK_S:g} s), so its rows were placed in the wrong phases; its clock moved "
            "after the master measured it at connect: sync the clocks of every host (NTP) and "
            "run again"
        )


def clock_drift(spans: TaggedSpans, windows: Windows, lost: set[str] | None = None) -> list[Drift]:
    """Workers whose ok rows tagged with a tier's hold lie more than SLACK_S outside that
    hold's span in the master's timeline. A hold that ended without its tier_end (server
    lost, campaign stopped), or the last one in results without a teardown event, is only
    checked at its start; so is every hold of a `lost` worker (cut off from the master, it
    hears of no later phase: its last rows keep the tags they had, 4 s past the hold's end
    in a real run whose workers missed their heartbeats)."""
    if not windows.from_timeline:
        return []
    holds = {w.tier: w for w in windows.tiers if w.hold_start is not None}
    worst: dict[str, Drift] = {}
    for (worker, tier), (first, last) in sorted(spans.items()):
        w = holds.get(tier)
        if w is None or w.hold_start is None:
            continue
        before = max(0.0, w.hold_start - first)
        after = 0.0
        # before the engine wrote a teardown event, it tagged rows written while stopping
        # with the last phase: there only the hold's start tells
        stopped_in = not windows.teardown_event and (
            windows.teardown_start is None
            or (w.hold_end is not None and w.hold_end >= windows.teardown_start)
        )
        if w.ended and w.hold_end is not None and not stopped_in and worker not in (lost or ()):
            after = max(0.0, last - w.hold_end)
        if max(before, after) <= SLACK_S:
            continue
        was = worst.get(worker)
        if was is None or max(before, after) > max(was.before_s, was.after_s):
            worst[worker] = Drift(worker, tier, before, after)
    return [worst[k] for k in sorted(worst)]
