"""Ordered SCTP delivery when a stream's SSNs arrive out of TSN order (sctp_order.py).

livekit-server was seen sending SSN 15, 16 at TSN 553, 554 and then SSN 14 at TSN 555 on
one subscriber's `_reliable` channel; aiortc's own reassembly then delivers nothing more
on that stream, ever. Chunks built by hand; the test knows the order they must come out.
"""

from __future__ import annotations

from aiortc import rtcsctptransport as sctp

from lkload.participants.aiortc import sctp_order

WHOLE = sctp.SCTP_DATA_FIRST_FRAG | sctp.SCTP_DATA_LAST_FRAG


def _chunk(tsn: int, ssn: int, data: bytes, flags: int = WHOLE) -> sctp.DataChunk:
    c = sctp.DataChunk(flags=flags)
    c.tsn, c.stream_id, c.stream_seq, c.protocol, c.user_data = tsn, 1, ssn, 53, data
    return c


def _stream(expected: int, *chunks: sctp.DataChunk) -> sctp.InboundStream:
    s = sctp.InboundStream()
    s.sequence_number = expected
    for c in chunks:
        s.add_chunk(c)
    return s


def _seen() -> tuple[sctp.DataChunk, ...]:
    # the order seen on the wire: SSN 14 after 15 and 16, with a higher TSN
    return (
        _chunk(552, 13, b"13"),
        _chunk(553, 15, b"15"),
        _chunk(554, 16, b"16"),
        _chunk(555, 14, b"14"),
        _chunk(556, 17, b"17"),
    )


def test_aiortc_alone_stalls_the_stream_for_good() -> None:
    """The bug this works around (fails when aiortc fixes it: then drop the workaround)."""
    stream = _stream(13, *_seen())
    aiortc_own = sctp_order._original or sctp.InboundStream.pop_messages  # installed or not
    out = [m[2] for m in aiortc_own(stream)]  # type: ignore[operator]
    assert out == [b"13"]
    assert [c.stream_seq for c in stream.reassembly] == [15, 16, 14, 17]  # waits forever


def test_messages_come_out_in_ssn_order_whatever_their_tsn() -> None:
    stream = _stream(13, *_seen())
    assert [m[2] for m in sctp_order.pop_messages(stream)] == [b"13", b"14", b"15", b"16", b"17"]
    assert stream.reassembly == [] and stream.sequence_number == 18


def test_fragments_and_a_missing_fragment() -> None:
    first = sctp.SCTP_DATA_FIRST_FRAG
    last = sctp.SCTP_DATA_LAST_FRAG
    # SSN 1 (whole, lower TSN) waits for SSN 0, whose second fragment is missing
    stream = _stream(0, _chunk(9, 1, b"one"), _chunk(10, 0, b"ze", first))
    assert list(sctp_order.pop_messages(stream)) == []
    stream.add_chunk(_chunk(11, 0, b"ro", last))
    assert [m[2] for m in sctp_order.pop_messages(stream)] == [b"zero", b"one"]
    assert stream.reassembly == [] and stream.sequence_number == 2


def test_unordered_messages_pass_a_waiting_ordered_one() -> None:
    unordered = WHOLE | sctp.SCTP_DATA_UNORDERED
    stream = _stream(5, _chunk(20, 6, b"six"), _chunk(21, 0, b"u", unordered))
    assert [m[2] for m in sctp_order.pop_messages(stream)] == [b"u"]
    stream.add_chunk(_chunk(22, 5, b"five"))
    assert [m[2] for m in sctp_order.pop_messages(stream)] == [b"five", b"six"]


def test_install_is_idempotent() -> None:
    sctp_order.install()
    sctp_order.install()
    assert sctp.InboundStream.pop_messages is sctp_order.pop_messages
