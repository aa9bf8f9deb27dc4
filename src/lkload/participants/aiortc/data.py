"""lkload's data messages, shared with the sdk engine: a UserPacket on topic "lkload"
whose payload is JSON {"lkload": 1, "from": identity, "seq": n, "t": unix_seconds}.

Receivers compute data_e2e_ms = now - t and detect gaps in each sender's seq.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from livekit.protocol import models as pm

__all__ = ["TOPIC", "DataMessage", "encode_packet", "decode_packet"]

TOPIC = "lkload"


@dataclass(frozen=True, slots=True)
class DataMessage:
    sender: str
    seq: int
    t: float

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError("seq starts at 1")

    def payload(self) -> bytes:
        return json.dumps(
            {"lkload": 1, "from": self.sender, "seq": self.seq, "t": self.t},
            separators=(",", ":"),
        ).encode()


def encode_packet(msg: DataMessage) -> bytes:
    """A serialized DataPacket as sent on the `_reliable` data channel."""
    packet = pm.DataPacket(
        kind=pm.DataPacket.RELIABLE,
        participant_identity=msg.sender,
        user=pm.UserPacket(payload=msg.payload(), topic=TOPIC),
        sequence=msg.seq,
    )
    return packet.SerializeToString()


def decode_packet(data: bytes) -> DataMessage | None:
    """The lkload message in a DataPacket, or None if it is some other packet.

    Raises ValueError on a malformed lkload message."""
    packet = pm.DataPacket()
    packet.ParseFromString(data)
    if packet.WhichOneof("value") != "user" or packet.user.topic != TOPIC:
        return None
    obj = json.loads(packet.user.payload)
    if not isinstance(obj, dict) or obj.get("lkload") != 1:
        raise ValueError("not an lkload v1 data message")
    return DataMessage(sender=str(obj["from"]), seq=int(obj["seq"]), t=float(obj["t"]))
