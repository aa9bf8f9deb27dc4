"""The `aiortc` participant engine: LiveKit signalling spoken by lkload itself, aiortc peer
connections, pre-encoded media (see docs/aiortc-interop.md)."""

from __future__ import annotations

from lkload.participants.aiortc.participant import AiortcParticipant
from lkload.participants.base import ParticipantContext

__all__ = ["AiortcParticipant", "create"]


def create(ctx: ParticipantContext) -> AiortcParticipant:
    return AiortcParticipant(ctx, decode=ctx.plan.decode)
