"""Ordered SCTP delivery when a stream's sequence numbers arrive out of TSN order.

aiortc's `InboundStream.pop_messages` (1.16) keeps a stream's chunks sorted by TSN and,
for ordered delivery, stops at the first complete message whose stream sequence number
(SSN) is not the expected one. It assumes the sender gives a stream's messages TSNs in SSN
order. livekit-server (pion) does not always: several senders' data are written to one
subscriber's `_reliable` channel concurrently, and SSN n+1 can get a lower TSN than SSN n
(seen: SSN 15, 16 at TSN 553, 554, then SSN 14 at TSN 555). aiortc then waits for SSN 14
at the head of the queue forever: every later message of the channel is kept, none is
delivered, and lkload's data receptions stop for good while audio and video go on
(docs/aiortc-interop.md, workaround 10; docs/reliability.md).

`install()` replaces `pop_messages` on the class, once: the expected SSN's message is
delivered wherever it sits in the queue, then the queue is scanned again for the next
one. Unordered messages and fragments are handled as aiortc does.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiortc import rtcsctptransport as _sctp

__all__ = ["install", "pop_messages"]

_original: object | None = None


def pop_messages(self: _sctp.InboundStream) -> Iterator[tuple[int, int, bytes]]:
    """Complete messages deliverable now, as (stream id, PPID, data); removes them."""
    pos = 0
    start_pos: int | None = None
    expected_tsn = 0
    ordered = True
    while pos < len(self.reassembly):  # bounded: each step advances pos or removes chunks
        chunk = self.reassembly[pos]
        if start_pos is None:
            ordered = not (chunk.flags & _sctp.SCTP_DATA_UNORDERED)
            if not (chunk.flags & _sctp.SCTP_DATA_FIRST_FRAG):
                pos += 1  # a later fragment of a message not startable here
                continue
            if ordered and chunk.stream_seq != self.sequence_number:
                pos += 1  # an ordered message whose turn has not come
                continue
            expected_tsn = chunk.tsn
            start_pos = pos
        elif chunk.tsn != expected_tsn:
            # the message starting at start_pos misses a fragment: not deliverable yet
            if ordered:
                return  # it is the expected one: nothing ordered can pass it
            start_pos = None
            continue  # this chunk may start an unordered message: look at it again
        if chunk.flags & _sctp.SCTP_DATA_LAST_FRAG:
            assert start_pos is not None
            user_data = b"".join(c.user_data for c in self.reassembly[start_pos : pos + 1])
            self.reassembly = self.reassembly[:start_pos] + self.reassembly[pos + 1 :]
            if ordered:
                self.sequence_number = _sctp.uint16_add(self.sequence_number, 1)
                pos = 0  # the next SSN may sit before this one: scan again
            else:
                pos = start_pos
            start_pos = None
            yield (chunk.stream_id, chunk.protocol, user_data)
            continue
        pos += 1
        expected_tsn = _sctp.tsn_plus_one(expected_tsn)


def install() -> None:
    """Replace aiortc's InboundStream.pop_messages by `pop_messages`. Idempotent."""
    global _original
    if _original is not None:
        return
    _original = _sctp.InboundStream.pop_messages
    _sctp.InboundStream.pop_messages = pop_messages  # type: ignore[method-assign]
