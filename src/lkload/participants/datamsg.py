"""The data message both engines send: who sent it, its sequence number, its send time.

Receivers compute data_e2e_ms = arrival - send time (one host: one clock; across hosts it
assumes synchronised clocks, e.g. NTP) and count a gap in a sender's sequence as lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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


class SequenceTracker:
    """Per sender: how many messages went missing between the ones that arrived."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def gap(self, msg: DataMessage) -> int:
        """Messages lost before this one (0 for the first message seen from a sender)."""
        last = self._last.get(msg.sender)
        if last is not None and msg.seq <= last:
            return 0  # duplicate or reordered: not a loss
        self._last[msg.sender] = msg.seq
        return 0 if last is None else msg.seq - last - 1
