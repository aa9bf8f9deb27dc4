"""Participant engines behind one small interface (join, run, leave)."""

from __future__ import annotations

import importlib

from lkload.participants.base import (
    NO_TRACK,
    JoinFailed,
    Participant,
    ParticipantContext,
    ParticipantPlan,
    Target,
    TrackRef,
)

# engine name -> module that defines `create(ctx) -> Participant`; imported on first use so
# that a campaign of one engine never loads the other's native libraries.
ENGINES = {
    "sdk": "lkload.participants.sdk",
    "aiortc": "lkload.participants.aiortc",
    "browser": "lkload.participants.browser",
}


def create_participant(engine: str, ctx: ParticipantContext) -> Participant:
    module = importlib.import_module(ENGINES[engine])
    return module.create(ctx)


__all__ = [
    "ENGINES",
    "NO_TRACK",
    "JoinFailed",
    "Participant",
    "ParticipantContext",
    "ParticipantPlan",
    "Target",
    "TrackRef",
    "create_participant",
]
