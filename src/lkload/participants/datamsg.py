"""The data message both engines send: who sent it, its sequence number, its send time.

Receivers compute data_e2e_ms = arrival - send time (one host: one clock; across hosts it
assumes synchronised clocks, e.g. NTP) and count a gap in a sender's sequence as lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lkload.metrics.schema import FailureKind
from lkload.participants.base import ParticipantContext

TOPIC = "lkload"


@dataclass(frozen=True, slots=True)
class DataMessage:
    sender: str
    seq: int
    sent: float  # unix seconds

    def encode(self) -> bytes:
        return json.dumps(
            {"lkload": 1, "from": self.sender, "seq": self.seq, "t": self.sent}
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> DataMessage | None:
        """None for anything that is not an lkload data message."""
        try:
            obj = json.loads(payload)
            if obj.get("lkload") != 1:
                return None
            return cls(str(obj["from"]), int(obj["seq"]), float(obj["t"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


# A message missing from a sender's sequence counts as lost only if it has not arrived this
# long after a later one did: a late (reordered) message is then one ok row, never a failure
# and an ok row for the same message.
REORDER_WINDOW_S = 2.0
MAX_GAP_ROWS = 100  # one gap never produces more failure rows than this


@dataclass(frozen=True, slots=True)
class Missing:
    sender: str
    seq: int
    noticed: float  # unix s: when a later message showed it missing


class DataSequences:
    """Per sender: the highest sequence number seen and the messages still missing below it.

    Each message is one attempt: `arrived` says whether to write its ok row (False for a
    duplicate, or a message already written off as lost); `lost` gives the messages missing
    for longer than the reorder window, each to be written as one failure row."""

    def __init__(self, window_s: float = REORDER_WINDOW_S) -> None:
        self.window_s = window_s
        self._high: dict[str, int] = {}
        self._missing: dict[str, dict[int, float]] = {}

    def arrived(self, sender: str, seq: int, now: float) -> bool:
        high = self._high.get(sender)
        if high is None:  # joined mid-stream: earlier messages were not ours to receive
            self._high[sender] = seq
            return True
        if seq > high:
            self._high[sender] = seq
            if seq > high + 1:
                missing = self._missing.setdefault(sender, {})
                for s in range(max(high + 1, seq - MAX_GAP_ROWS), seq):
                    missing[s] = now
            return True
        gaps = self._missing.get(sender)
        return gaps is not None and gaps.pop(seq, None) is not None

    def lost(self, now: float) -> list[Missing]:
        """Messages missing for longer than the window (each returned once)."""
        out = []
        for sender, missing in self._missing.items():
            for seq, noticed in list(missing.items()):
                if now - noticed >= self.window_s:
                    del missing[seq]
                    out.append(Missing(sender, seq, noticed))
        return out

    def drain(self) -> list[Missing]:
        """Every message still missing (the receiver is leaving): each is lost."""
        out = [Missing(s, q, t) for s, m in self._missing.items() for q, t in m.items()]
        self._missing.clear()
        return out


def write_lost(ctx: ParticipantContext, lost: list[Missing]) -> None:
    """One `media` failure per data message missing from a sender's sequence."""
    for m in lost:
        detail = f"message {m.seq} from {m.sender} missing"
        ctx.fail("data_e2e_ms", FailureKind.MEDIA, detail=detail, at=m.noticed)
