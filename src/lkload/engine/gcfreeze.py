"""Garbage collection out of the measured window.

A full (generation 2) collection pauses the whole generator for a time that grows with its
live objects: ~0.25 s at 300 aiortc participants, more at thousands (docs/benchmarks.md,
Thousands). In a hold such a pause is measured as latency of the server (data_e2e_ms,
signal_rtt_ms) and as loop lag. So once a tier's participants have joined (settle, or hold
when there is no settle) the process collects once and freezes what survives (gc.freeze: the
collector skips it from then on); when participants may leave or join again (ramp, recovery,
teardown) it unfreezes, so that what they leave behind is collected as usual.
"""

from __future__ import annotations

import gc

from lkload.metrics.schema import Phase

_frozen = False


def on_phase(phase: Phase) -> None:
    global _frozen
    if phase in (Phase.SETTLE, Phase.HOLD):
        if not _frozen:
            gc.collect()
            gc.freeze()
            _frozen = True
    elif _frozen:
        gc.unfreeze()
        _frozen = False
