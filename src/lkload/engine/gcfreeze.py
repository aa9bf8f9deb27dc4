"""Garbage collection out of the way of thousands of participants.

A full (generation 2) collection pauses the whole generator for a time that grows with its
live objects: 1-3.7 s at 1,000-2,000 aiortc participants, every ~10 s while they joined
(docs/benchmarks.md, Thousands). Such a pause stops DTLS and STUN timers (joins then fail)
and, in a hold, is measured as the server's latency (data_e2e_ms, signal_rtt_ms) and as
loop lag. Joined participants live until they leave, so they are frozen (gc.freeze: the
collector skips them from then on): every FREEZE_EVERY_JOINS joins, and once a tier's
participants have all joined (settle, or hold when there is no settle), after a collection
of what is not frozen yet. When participants leave in numbers (recovery, teardown) the
process unfreezes, so that what they leave behind is collected as usual. Cyclic garbage
that existed at a freeze waits until then: bounded by the campaign.
"""

from __future__ import annotations

import gc

from lkload.metrics.schema import Phase

FREEZE_EVERY_JOINS = 100
_joins = 0


def on_phase(phase: Phase) -> None:
    if phase in (Phase.SETTLE, Phase.HOLD):
        gc.collect()  # only what is not frozen yet: cheap
        gc.freeze()
    elif phase in (Phase.RECOVERY, Phase.TEARDOWN):
        gc.unfreeze()


def joined() -> None:
    """A participant joined (any thread)."""
    global _joins
    _joins += 1
    if _joins % FREEZE_EVERY_JOINS == 0:
        gc.collect(1)  # the young garbage first
        gc.freeze()
