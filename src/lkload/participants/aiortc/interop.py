"""Every place where lkload reaches into aiortc/aioice internals, in one module.

Each workaround is documented in docs/aiortc-interop.md with the versions it was verified
with (3-7 here are workarounds 5-9 there), and tests/test_aiortc_interop.py fails if the
internal it relies on changes.

1. Host address filter (aioice): aioice has no setting for which local addresses to
   gather; it calls the module function `aioice.ice.get_host_addresses` from
   `Connection.gather_candidates`. We replace that function, once, by one that returns the
   addresses of the current context (`ice.restricted_to`) and otherwise behaves as before.
   Public, module-level name: no private attribute is touched.
2. Receiver tap (aiortc): aiortc's RTCRtpReceiver starts one decoder *thread* per receiver
   and depayloads, jitter-buffers and decodes every packet. lkload only counts RTP. The
   tap replaces, on one receiver instance, `receive` (register with the DTLS transport's
   router, start no thread), `stop`, `_handle_rtp_packet` and `_handle_rtcp_packet`
   (hand packets to lkload's accounting). With `decode=True` the original handlers still
   run after lkload's, so frames are decoded as usual. Retransmissions (RTX payload types,
   known from the receive parameters) go to lkload's `on_rtx` with their original sequence
   number, never to `on_rtp`: aiortc's router learns the RTX SSRC by payload type and
   routes RTX to the media receiver.
3. Fast RTP receive path (aioice + aiortc), only without decoding: aiortc hands every
   datagram from aioice's protocol to `Connection.data_received`, which queues it for the
   DTLS transport's task (one task wake-up per packet), which unprotects it, parses it into
   an RtpPacket with its header extensions and routes it by SSRC/payload type to the
   receiver. `install_fast_rtp` replaces `datagram_received` on the STUN protocol
   *instances* of one ICE connection (RTP/RTCP skip the STUN parse; `data_received` on the
   connection instance hooks protocols gathered later): an SRTP datagram that is RTP
   (not RTCP), arrives while the DTLS transport is connected
   and nothing is queued ahead of it, and whose (cleartext) SSRC and payload type route, by
   aiortc's own router tables, to a tapped receiver is unprotected right there and its
   header fields (ssrc, seq, timestamp, payload size) handed to the receiver's accounting.
   Anything else (DTLS, RTCP with the sender reports, unknown SSRCs, RTX payload types,
   packets of untapped or decoding receivers) takes aiortc's own path unchanged.
4. Send path (aioice): `RTCIceTransport._send` is an instance attribute bound to aioice's
   `Connection.send`, which awaits `sendto(data, 1)`, which awaits the nominated pair's
   `StunProtocol.send_data`, which calls `transport.sendto`: three coroutines per packet.
   `install_fast_send` replaces the attribute on one ICE transport by one coroutine doing
   the same lookup (component 1's nominated pair, ConnectionError without one) and the
   same `sendto`. `send_rtcp` sends a receiver report the same way, synchronously, after
   `protect_rtcp` with the transport's SRTP session (what `_send_rtp` does for RTCP).
5. Clock (aiortc): `aiortc.clock.current_ntp_time` / `current_ms` build a timezone-aware
   datetime per call; the sender calls the first twice per packet and the DTLS transport
   the second once per received SRTP datagram. `install_fast_clock` replaces the two module
   functions by `time.time_ns()` arithmetic with the same results (same wall clock,
   microsecond resolution, same rounding). Public module-level names, as in 1.
6. Pre-encoded sender loop (aiortc + pylibsrtp), only without decoding: per packet aiortc's
   `RTCRtpSender._run_rtp` awaits the track, packetizes the frame again, builds an RtpPacket
   and its header extensions, serializes, and sends through `_send_rtp` (pylibsrtp's
   `protect` allocates and copies twice). `install_preencoded_sender` replaces `_run_rtp`
   and `_retransmit` on one sender instance (before `send()` starts them) by a loop over
   payloads cut once per sample (packetize.py): per packet the header is a template made by
   aiortc's own `RtpPacket.serialize` with the sender's negotiated extension map (sequence
   number, marker, timestamp and abs-send-time written in place), protected in place by
   libsrtp with the transport's own SRTP session (`_Srtp`), sent to the nominated pair as in
   4. It keeps the sender's RTCP working: it updates the counters `_run_rtcp` puts in its
   sender reports, sets the started/exited events `stop()` waits for, stops the track at the
   end, and answers NACKs from a history of the last 128 packets (RTX when negotiated), as
   aiortc does. A PLI/FIR (aiortc calls the instance's `_send_keyframe`) makes the loop jump
   to its next keyframe (`FrameSource.request_keyframe`).
7. Receive-side SRTP (pylibsrtp): `_Srtp.unprotect_fields` unprotects into a buffer made
   once and reads the header fields from it, instead of pylibsrtp's `unprotect`, which
   allocates a length cell and returns a copy per packet. Same libsrtp call, same session.
8. rid simulcast (aiortc sends none): with `layers`, the pre-encoded sender sends one
   stream per layer (mid + rtp-stream-id in every packet, through a copy of the sender's
   private header-extension id table), registers the extra SSRCs with the router, sends
   their sender reports, and takes their NACKs/PLIs by replacing the sender instance's
   `_handle_rtcp_packet` (anything else goes to aiortc's). The offer is munged in join.py.
9. Audio level (RFC 6464): negotiated by the server for audio, never set by aiortc's
   sender; the pre-encoded loop writes each frame's level in place (offset found from
   aiortc's serializer), talk spurts and DTX silences coming from the frame source.
10. Transport-wide sequence numbers: aiortc never offers transport-wide-cc; join.py offers
   it as Chrome does and, where the answer keeps it, the pre-encoded loop writes the peer
   connection's next transport-wide sequence number in every packet (`TransportSeq`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc.clock
import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from lkload.participants.aiortc import ice
from lkload.participants.aiortc.packetize import FrameSource
from lkload.participants.aiortc.rtcp import NTP_UNIX_OFFSET, unix_to_ntp

__all__ = [
    "AIOICE_VERIFIED",
    "AIORTC_VERIFIED",
    "FastRtpHandler",
    "RtpHandler",
    "RtxHandler",
    "SrHandler",
    "install_fast_clock",
    "install_fast_rtp",
    "install_fast_send",
    "install_host_address_filter",
    "install_preencoded_sender",
    "send_rtcp",
    "tap_receiver",
]

logger = logging.getLogger(__name__)

AIORTC_VERIFIED = "1.16.0"
AIOICE_VERIFIED = "0.13.0"

_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def install_host_address_filter() -> None:
    """Make aioice gather only `ice.host_addresses()` when a restriction is set. Idempotent."""
    global _original_get_host_addresses
    if _original_get_host_addresses is not None:
        return
    original = aioice.ice.get_host_addresses
    _original_get_host_addresses = original

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        allowed = ice.host_addresses()
        if allowed is None:
            return original(use_ipv4, use_ipv6)
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


# (packet, arrival unix seconds) -> None ; called for every RTP packet of the receiver.
RtpHandler = Callable[[RtpPacket, float], None]
# (sender-report packet, arrival unix seconds) -> None
SrHandler = Callable[[RtcpSrPacket, float], None]


# (ssrc, sequence number, timestamp, payload bytes + 12, arrival unix seconds) -> None
FastRtpHandler = Callable[[int, int, int, int, float], None]
# (RTX ssrc, original sequence number, arrival unix seconds) -> None
RtxHandler = Callable[[int, int, float], None]


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_rtp: RtpHandler,
    on_sr: SrHandler,
    *,
    decode: bool = False,
    on_rtp_fields: FastRtpHandler | None = None,
    on_rtx: RtxHandler | None = None,
    on_params: Callable[[RTCRtpReceiveParameters], None] | None = None,
    on_vp8: Callable[[Any, int, int], None] | None = None,
) -> None:
    """Route one receiver's RTP/RTCP to lkload's accounting (see module docstring, 2).
    `on_rtp_fields` (ignored with `decode=True`) is what the fast receive path
    (`install_fast_rtp`) calls for this receiver's packets instead of `on_rtp`.
    Retransmissions (RTX payload types: RFC 4588) go to `on_rtx` with their original
    sequence number, never to `on_rtp`; `on_params` gets the negotiated receive parameters
    (codecs with their RTCP feedback) when the receiver starts. Without decoding, `on_vp8`
    gets (data, start, end) of each VP8 payload that starts a frame (the received layer's
    size is in its keyframes)."""
    if getattr(receiver, "_lkload_tapped", False):
        return
    original_rtp = receiver._handle_rtp_packet
    original_rtcp = receiver._handle_rtcp_packet
    original_receive = receiver.receive
    rx: Any = receiver  # instance attributes shadow the class's methods
    rtx_pts: set[int] = set()  # filled by receive(): the RTX payload types
    rx._lkload_rtx_pts = rtx_pts
    rx._lkload_vp8 = None  # set by receive() for a VP8 receiver without decoding

    def take_params(parameters: RTCRtpReceiveParameters) -> None:
        rtx_pts.update(
            c.payloadType for c in parameters.codecs if is_rtx(c) and c.payloadType is not None
        )
        media = [c for c in parameters.codecs if not is_rtx(c)]
        if not decode and media and media[0].mimeType.lower() == "video/vp8":
            rx._lkload_vp8 = on_vp8
        if on_params is not None:
            on_params(parameters)

    def rtx_packet(packet: RtpPacket) -> bool:
        """A retransmission: handed to on_rtx (original sequence number first in it)."""
        if packet.payload_type not in rtx_pts:
            return False
        if on_rtx is not None and len(packet.payload) >= 2:
            osn = (packet.payload[0] << 8) | packet.payload[1]
            on_rtx(packet.ssrc, osn, time.time())
        return True

    if decode:

        async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            if not rtx_packet(packet):
                on_rtp(packet, time.time())
            await original_rtp(packet, arrival_time_ms)

        async def receive_decoding(parameters: RTCRtpReceiveParameters) -> None:
            take_params(parameters)
            await original_receive(parameters)

        async def handle_rtcp(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                on_sr(packet, time.time())
            await original_rtcp(packet)

        rx.receive = receive_decoding

    else:

        async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            if not rtx_packet(packet):
                on_rtp(packet, time.time())
                vp8 = rx._lkload_vp8
                if vp8 is not None and packet.payload and packet.payload[0] & 0x10:
                    vp8(packet.payload, 0, len(packet.payload))

        async def handle_rtcp(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                on_sr(packet, time.time())

        registered: list[bool] = []

        async def receive(parameters: RTCRtpReceiveParameters) -> None:
            if not registered:
                take_params(parameters)
                receiver.transport._register_rtp_receiver(receiver, parameters)
                registered.append(True)

        async def stop() -> None:
            if registered:
                receiver.transport._unregister_rtp_receiver(receiver)
                registered.clear()

        rx.receive = receive
        rx.stop = stop
        if on_rtp_fields is not None:
            rx._lkload_fast_rtp = on_rtp_fields

    rx._handle_rtp_packet = handle_rtp
    rx._handle_rtcp_packet = handle_rtcp
    rx._lkload_tapped = True


_RTP_HEADER = struct.Struct("!BBHII")  # v/p/x/cc, m/pt, seq, timestamp, ssrc
_SSRC_PT = struct.Struct("!xBxxxxxxI")  # m/pt, ssrc (cleartext in SRTP)
_EXT_LEN = struct.Struct("!xxH")  # header extension: profile, length in 32-bit words


def install_fast_rtp(dtls: RTCDtlsTransport) -> bool:
    """Install the fast RTP receive path on the ICE connection under `dtls` (see module
    docstring, 3). Idempotent; undone when the DTLS transport closes or fails. Returns
    False (nothing installed) if the transport does not have the expected shape."""
    if getattr(dtls, "_lkload_fast_rtp", False):
        return True
    conn = getattr(dtls.transport, "_connection", None)
    queue = getattr(conn, "_queue", None)
    pending = getattr(queue, "_queue", None)  # the Queue's deque
    protocols = getattr(conn, "_protocols", None)
    if conn is None or pending is None or protocols is None or "data_received" in vars(conn):
        return False
    queue_datagram = conn.data_received  # aioice: put it in the queue for the DTLS task
    router = dtls._rtp_router
    ssrc_table = router.ssrc_table
    pt_table = router.payload_type_table
    connected = DtlsState.CONNECTED
    ssrc_pt = _SSRC_PT.unpack_from
    header = _RTP_HEADER.unpack_from
    ext_len = _EXT_LEN.unpack_from
    now = time.time
    unprotect = _srtp_lib.srtp_unprotect
    rx: list[_Srtp] = []  # made at the first packet: the session exists once DTLS connected
    hooked: list[Any] = []

    def make_datagram_received(component: int, stun_received: Any) -> Any:
        def datagram_received(data: bytes, addr: Any) -> None:
            # RTP/RTCP (first byte 128..191) is never STUN (first two bits zero): it skips
            # StunProtocol's STUN parse. RTP (second byte outside RTCP's 192..208) is handled
            # here if the DTLS transport is connected and nothing is queued ahead of it (the
            # DTLS task has consumed everything: the order of datagrams is kept).
            if 127 < data[0] < 192:
                if (
                    len(data) >= 12
                    and not 191 < data[1] < 209
                    and dtls._state is connected
                    and not pending
                ):
                    m_pt, ssrc = ssrc_pt(data)
                    receiver = ssrc_table.get(ssrc)
                    handler = getattr(receiver, "_lkload_fast_rtp", None)
                    pt = m_pt & 0x7F
                    # RtpRouter.route_rtp: a known SSRC whose receiver has the payload type;
                    # retransmissions (RTX, rare) take aiortc's path to the tap's on_rtx
                    if (
                        handler is not None
                        and receiver in pt_table.get(pt, ())
                        and pt not in receiver._lkload_rtx_pts  # type: ignore[union-attr]
                    ):
                        arrival = now()
                        n = len(data)
                        # what RTCDtlsTransport._recv_next counts for its transport stats
                        # (private, name-mangled: mypy does not see them)
                        dtls._RTCDtlsTransport__rx_bytes += n  # type: ignore[attr-defined]
                        dtls._RTCDtlsTransport__rx_packets += 1  # type: ignore[attr-defined]
                        if not rx or rx[0].session is not dtls._rx_srtp:
                            rx[:] = [_Srtp(dtls._rx_srtp)]
                        srtp = rx[0]
                        if n > _Srtp.SIZE:
                            return  # pylibsrtp refuses it (ValueError), aiortc drops it
                        buf = srtp.buf
                        buf[0:n] = data
                        srtp.lenp[0] = n
                        if unprotect(srtp.ctx, srtp.cdata, srtp.lenp):
                            return  # authentication/replay failure: aiortc drops it too
                        # RtpPacket.parse's checks, without building the packet
                        n = srtp.lenp[0]
                        b0, _, seq, ts, _ = header(buf)
                        if b0 >> 6 != 2:
                            return
                        pos = 12 + 4 * (b0 & 0x0F)
                        if b0 & 0x10:
                            if n < pos + 4:
                                return
                            pos += 4 + 4 * ext_len(buf, pos)[0]
                        if n < pos:
                            return
                        if b0 & 0x20:
                            pad = buf[n - 1][0]
                            if not pad or pad > n - pos:
                                return
                            n -= pad
                        try:
                            handler(ssrc, seq, ts, n - pos + 12, arrival)
                            # a VP8 frame's first packet (S bit): its keyframes tell the size
                            vp8 = receiver._lkload_vp8  # type: ignore[union-attr]
                            if vp8 is not None and n > pos and srtp.view[pos] & 0x10:
                                vp8(srtp.view, pos, n)
                        except Exception:  # never let it reach the datagram transport
                            logger.exception("fast RTP handler failed")
                        return
                queue_datagram(data, component)  # what StunProtocol does with non-STUN
            else:
                stun_received(data, addr)

        return datagram_received

    def hook_protocols() -> None:
        for protocol in protocols:
            if "datagram_received" not in vars(protocol):
                protocol.datagram_received = make_datagram_received(
                    protocol.local_candidate.component, protocol.datagram_received
                )
                hooked.append(protocol)

    def data_received(data: bytes, component: int) -> None:
        # a datagram through a protocol not hooked yet (gathered after install): aiortc's
        # path for this one, and hook the protocol for the next ones
        if len(hooked) != len(protocols):
            hook_protocols()
        queue_datagram(data, component)

    def uninstall() -> None:
        vars(conn).pop("data_received", None)  # back to aioice's methods; no cycle left
        for protocol in hooked:
            vars(protocol).pop("datagram_received", None)
        hooked.clear()

    def on_statechange() -> None:
        if dtls.state in ("closed", "failed"):
            uninstall()

    hook_protocols()
    conn.data_received = data_received
    dtls.on("statechange", on_statechange)
    dtls._lkload_fast_rtp = True  # type: ignore[attr-defined]  # our marker
    return True


def install_fast_send(dtls: RTCDtlsTransport) -> bool:
    """Send the DTLS transport's datagrams (RTP, RTCP, DTLS) straight to the nominated
    pair's socket (see module docstring, 4). Idempotent. Returns False (nothing installed)
    if the transport does not have the expected shape."""
    ice_transport = dtls.transport
    conn = getattr(ice_transport, "_connection", None)
    nominated = getattr(conn, "_nominated", None)
    if (
        conn is None
        or not isinstance(nominated, dict)
        or getattr(ice_transport, "_send", None) != conn.send
    ):
        return getattr(ice_transport, "_lkload_fast_send", False)

    async def send(data: bytes) -> None:
        # aioice: Connection.send -> sendto(data, 1) -> StunProtocol.send_data -> sendto
        pair = nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        pair.protocol.transport.sendto(data, pair.remote_addr)

    ice_transport._send = send
    ice_transport._lkload_fast_send = True  # type: ignore[attr-defined]  # our marker
    return True


def send_rtcp(dtls: RTCDtlsTransport, data: bytes) -> bool:
    """Protect one RTCP packet with the transport's SRTP session and send it now, on the
    nominated pair as `install_fast_send` does (synchronous: no task per report). False,
    nothing sent, if the transport is not connected."""
    session = dtls._tx_srtp
    nominated = getattr(dtls.transport._connection, "_nominated", {})
    pair = nominated.get(1)
    if dtls._state is not DtlsState.CONNECTED or session is None or pair is None:
        return False
    pair.protocol.transport.sendto(session.protect_rtcp(data), pair.remote_addr)
    return True


_original_clock: tuple[Callable[[], int], Callable[[], int]] | None = None


def _fast_current_ntp_time() -> int:
    us = time.time_ns() // 1000
    seconds, micro = divmod(us, 1_000_000)
    return ((seconds + NTP_UNIX_OFFSET) << 32) | ((micro << 32) // 1_000_000)


def _fast_current_ms() -> int:
    return (time.time_ns() // 1000) // 1000 + NTP_UNIX_OFFSET * 1000


def install_fast_clock() -> None:
    """Replace aiortc.clock.current_ntp_time/current_ms (module docstring, 5). Idempotent."""
    global _original_clock
    if _original_clock is not None:
        return
    _original_clock = (aiortc.clock.current_ntp_time, aiortc.clock.current_ms)
    aiortc.clock.current_ntp_time = _fast_current_ntp_time
    aiortc.clock.current_ms = _fast_current_ms


class _Srtp:
    """A libsrtp session of pylibsrtp (`Session._srtp`) used in place on a buffer made once
    (module docstring, 6 and 7): no allocation per packet. Not thread-safe; one per
    direction of one DTLS transport, used on its event loop."""

    SIZE = 1500 + pylibsrtp.SRTP_MAX_TRAILER_LEN

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session  # keeps the libsrtp context alive as long as we use it
        self.ctx = session._srtp[0]
        self.cdata = _srtp_ffi.new("char[]", self.SIZE)
        self.buf = _srtp_ffi.buffer(self.cdata)
        self.lenp = _srtp_ffi.new("int *")
        self.view = memoryview(self.buf)  # indexing gives ints (the buffer gives bytes)


_HEADER_FIELDS = struct.Struct("!BHI")  # m/pt, seq, timestamp (at offset 1)
_ABS_SEND_TIME = struct.Struct("!BH")  # 24 bits, 6.18 fixed-point seconds
_ABS_PROBE = 0xABCDEF


def _header_template(
    ext_map: Any,
    payload_type: int,
    ssrc: int,
    mid: str | None,
    rid: str | None = None,
    audio_level: tuple[bool, int] | None = None,
    transport_seq: int | None = None,
) -> tuple[bytes, int]:
    """The RTP header aiortc's sender would write for this stream (its negotiated header
    extensions: mid, abs-send-time; and a simulcast layer's rid), from aiortc's own
    serializer, and the offset of the abs-send-time value in it (-1: not negotiated)."""
    probe = RtpPacket(payload_type=payload_type, ssrc=ssrc)
    probe.extensions.abs_send_time = _ABS_PROBE
    probe.extensions.mid = mid
    probe.extensions.rtp_stream_id = rid
    probe.extensions.audio_level = audio_level
    probe.extensions.transport_sequence_number = transport_seq
    header = probe.serialize(ext_map)
    marker = _ABS_PROBE.to_bytes(3, "big")
    offset = header.find(marker, 12)
    if offset != -1 and header.find(marker, offset + 1) != -1:
        raise ValueError("ambiguous abs-send-time offset in the RTP header template")
    return header, offset


def _level_offset(ext_map: Any, payload_type: int, ssrc: int, mid: str | None) -> int:
    """Where aiortc's serializer writes the ssrc-audio-level byte (RFC 6464) in this
    stream's header, or -1 if the extension is not negotiated."""
    quiet, _ = _header_template(ext_map, payload_type, ssrc, mid, audio_level=(False, 0))
    loud, _ = _header_template(ext_map, payload_type, ssrc, mid, audio_level=(True, 127))
    diff = [i for i, (a, b) in enumerate(zip(quiet, loud, strict=False)) if a != b]
    if len(quiet) != len(loud) or len(diff) > 1:
        raise ValueError("ambiguous audio-level offset in the RTP header template")
    return diff[0] if diff else -1


def _abs_send_time() -> int:
    """abs-send-time of now, as aiortc's sender computes it (NTP time >> 14, 24 bits)."""
    return (aiortc.clock.current_ntp_time() >> 14) & 0xFFFFFF


_SENDER_STATE = (
    "rtp_started",
    "rtp_exited",
    "track",
    "mid",
    "rtp_header_extensions_map",
    "rtx_payload_type",
    "ntp_timestamp",
    "rtp_timestamp",
    "octet_count",
    "packet_count",
)
_HISTORY = 128  # packets kept for NACKs, as aiortc's RTP_HISTORY_SIZE


@dataclass(slots=True)
class TransportSeq:
    """Transport-wide sequence numbers of one peer connection (all its streams share them)
    and the answer's transport-wide-cc extension id per mid (set before the answer is
    applied, i.e. before the senders start)."""

    ids: dict[str, int]
    seq: int = 0


def _with_ids(ext_map: HeaderExtensionsMap, rid_id: int | None, twcc_id: int | None) -> Any:
    """A copy of a sender's negotiated extension map that also writes rtp-stream-id and/or
    transport-wide-cc (aiortc negotiates neither: its private id table is copied)."""
    ids = copy.copy(ext_map._HeaderExtensionsMap__ids)  # type: ignore[attr-defined]
    if rid_id is not None:
        ids.rtp_stream_id = rid_id
    if twcc_id is not None:
        ids.transport_sequence_number = twcc_id
    out = HeaderExtensionsMap()
    out._HeaderExtensionsMap__ids = ids  # type: ignore[attr-defined]
    return out


@dataclass(slots=True)
class _Layer:
    """One simulcast layer of a sender: its rid, frames, SSRC and NACK history."""

    rid: str
    frames: FrameSource
    ssrc: int
    history: dict[int, tuple[int, int, int, bytes]]
    ext_map: Any = None


def install_preencoded_sender(
    sender: RTCRtpSender,
    frames: FrameSource,
    *,
    layers: list[tuple[str, FrameSource]] | None = None,
    rid_ext_id: int = 10,
    twcc: TransportSeq | None = None,
) -> bool:
    """Send `frames` from this sender with lkload's loop instead of aiortc's (module
    docstring, 6). Call before the sender starts (before the answer is applied). Returns
    False (nothing installed) if the sender does not have the expected shape.

    `layers` (rid, frames) makes it a rid-based simulcast sender (module docstring, 8): the
    first layer is sent on the sender's own SSRC (`frames` must be its frames), the others
    on SSRCs of their own, every packet with mid and rid (`rid_ext_id`, the id offered for
    rtp-stream-id), sender reports for the other layers sent by the loop itself, and the
    server's NACKs and PLIs dispatched to the layer they name.

    `twcc`: when the answer kept transport-wide-cc for this sender's mid, every packet
    carries the peer connection's next transport-wide sequence number, as Chrome's."""
    state = vars(sender)
    names = {n: f"_RTCRtpSender__{n}" for n in _SENDER_STATE}
    if "_run_rtp" in state or any(name not in state for name in names.values()):
        return False
    history: dict[int, tuple[int, int, int, bytes]] = {}  # seq % size -> seq, m/pt, ts, payload
    rtx: dict[str, Any] = {}
    extra: list[_Layer] = []
    if layers:
        if layers[0][1] is not frames:
            raise ValueError("the first simulcast layer must be the sender's own frames")
        extra = [_Layer(rid, f, _new_ssrc(sender), {}) for rid, f in layers[1:]]
    by_ssrc = {layer.ssrc: layer for layer in extra}

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        state[names["rtp_started"]].set()
        try:
            twcc_id = twcc.ids.get(state[names["mid"]]) if twcc is not None else None
            base_map = state[names["rtp_header_extensions_map"]]
            if not layers:
                await _send_frames(
                    sender, state, names, codec, frames, history,
                    ext_map=_with_ids(base_map, None, twcc_id) if twcc_id else None,
                    twcc=twcc if twcc_id else None,
                )  # fmt: skip
            else:
                ext_map = _with_ids(base_map, rid_ext_id, twcc_id)
                router = sender.transport._rtp_router
                for layer in extra:
                    layer.ext_map = ext_map
                    router.register_sender(sender, layer.ssrc)  # its NACKs/PLIs reach us
                loops = [
                    _send_frames(
                        sender, state, names, codec, frames, history, rid=layers[0][0],
                        ext_map=ext_map, twcc=twcc if twcc_id else None,
                    )
                ] + [
                    _send_frames(
                        sender, state, names, codec, layer.frames, layer.history,
                        rid=layer.rid, ext_map=ext_map, ssrc=layer.ssrc,
                        twcc=twcc if twcc_id else None,
                    )
                    for layer in extra
                ]  # fmt: skip
                tasks = [asyncio.ensure_future(loop_) for loop_ in loops]
                try:
                    await asyncio.gather(*tasks)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:  # as aiortc: log it, and still end as a stopped sender
            logger.exception("pre-encoded sender failed")
        track = state[names["track"]]
        if track is not None:
            track.stop()
            state[names["track"]] = None
        state[names["rtp_exited"]].set()

    async def retransmit(sequence_number: int) -> None:
        entry = history.get(sequence_number % _HISTORY)
        dtls = sender.transport
        if entry is None or entry[0] != sequence_number or dtls._state is not DtlsState.CONNECTED:
            return
        _, m_pt, timestamp, payload = entry
        rtx_pt = state[names["rtx_payload_type"]]
        if rtx_pt is None:
            packet = _packet(state, names, m_pt, sequence_number, timestamp, payload, sender._ssrc)
            await dtls._send_rtp(packet)
            return
        if rtx.get("pt") != rtx_pt:
            rtx.update(pt=rtx_pt, seq=random.getrandbits(15))
        seq = rtx["seq"]
        rtx["seq"] = (seq + 1) & 0xFFFF
        data = _packet(
            state,
            names,
            (m_pt & 0x80) | rtx_pt,
            seq,
            timestamp,
            struct.pack("!H", sequence_number) + payload,
            sender._rtx_ssrc,
        )
        await dtls._send_rtp(data)

    original_rtcp = sender._handle_rtcp_packet

    async def handle_rtcp(packet: AnyRtcpPacket) -> None:
        # feedback naming one of the extra layers' SSRCs; the rest (the first layer's, and
        # receiver reports) goes to aiortc's handler, which calls _retransmit/_send_keyframe
        layer = by_ssrc.get(getattr(packet, "media_ssrc", -1))
        if layer is None:
            await original_rtcp(packet)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for seq in packet.lost:
                await _retransmit_layer(sender, state, names, layer, seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            layer.frames.request_keyframe()

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._retransmit = retransmit  # type: ignore[method-assign]
    if extra:
        sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]
        sender._lkload_layers = [_Layer(layers[0][0], frames, sender._ssrc, history), *extra]  # type: ignore[attr-defined,index]
    # a PLI/FIR (aiortc's _handle_rtcp_packet calls _send_keyframe): the loop's next keyframe
    sender._send_keyframe = frames.request_keyframe  # type: ignore[method-assign]
    sender._lkload_frames = frames  # type: ignore[attr-defined]
    sender._lkload_history = history  # type: ignore[attr-defined]  # what NACKs can get
    return True


def _new_ssrc(sender: RTCRtpSender) -> int:
    while True:
        ssrc = random.getrandbits(32)
        if ssrc not in (sender._ssrc, sender._rtx_ssrc):
            return ssrc


async def _retransmit_layer(
    sender: RTCRtpSender, state: dict[str, Any], names: dict[str, str], layer: _Layer, seq: int
) -> None:
    """A NACKed packet of an extra simulcast layer, sent again as it was (the publisher's
    answer negotiates no RTX)."""
    entry = layer.history.get(seq % _HISTORY)
    dtls = sender.transport
    if entry is None or entry[0] != seq or dtls._state is not DtlsState.CONNECTED:
        return
    _, m_pt, timestamp, payload = entry
    packet = _packet(
        state, names, m_pt, seq, timestamp, payload, layer.ssrc, layer.ext_map, layer.rid
    )
    await dtls._send_rtp(packet)


def _packet(
    state: dict[str, Any],
    names: dict[str, str],
    m_pt: int,
    seq: int,
    timestamp: int,
    payload: bytes,
    ssrc: int,
    ext_map: Any = None,
    rid: str | None = None,
) -> bytes:
    """One cleartext RTP packet (retransmissions only: rare, so no template cache)."""
    ext_map = ext_map or state[names["rtp_header_extensions_map"]]
    header, abs_at = _header_template(ext_map, m_pt & 0x7F, ssrc, state[names["mid"]], rid)
    packet = bytearray(header + payload)
    _HEADER_FIELDS.pack_into(packet, 1, m_pt, seq, timestamp)
    if abs_at != -1:
        now = _abs_send_time()
        _ABS_SEND_TIME.pack_into(packet, abs_at, now >> 16, now & 0xFFFF)
    return bytes(packet)


async def _send_frames(
    sender: RTCRtpSender,
    state: dict[str, Any],
    names: dict[str, str],
    codec: RTCRtpCodecParameters,
    frames: FrameSource,
    history: dict[int, tuple[int, int, int, bytes]],
    *,
    rid: str | None = None,
    ext_map: Any = None,
    ssrc: int | None = None,
    twcc: TransportSeq | None = None,
) -> None:
    """The loop of `install_preencoded_sender`: one wake-up per frame, its packets sent
    back to back (as aiortc does), the SR counters updated once per frame. With `ssrc` (an
    extra simulcast layer) it sends that stream's sender reports itself, once a second."""
    loop = asyncio.get_running_loop()
    dtls = sender.transport
    connected = DtlsState.CONNECTED
    nominated = dtls.transport._connection._nominated
    own_sr = ssrc is not None
    ssrc = sender._ssrc if ssrc is None else ssrc
    ext_map = ext_map or state[names["rtp_header_extensions_map"]]
    # audio: the RFC 6464 level of each frame (the frame source's talk spurts), written in
    # place like the sequence number; the server's active-speaker detection reads it
    level_at = -1
    if codec.mimeType.lower().startswith("audio/"):
        level_at = _level_offset(ext_map, codec.payloadType or 0, ssrc, state[names["mid"]])
    template, abs_at = _header_template(
        ext_map,
        codec.payloadType or 0,
        ssrc,
        state[names["mid"]],
        rid,
        audio_level=(True, 127) if level_at != -1 else None,
        transport_seq=0xFFFF if twcc is not None else None,
    )
    tw_at = -1
    if twcc is not None:  # where the transport-wide sequence number goes (found as level's)
        zero, _ = _header_template(
            ext_map, codec.payloadType or 0, ssrc, state[names["mid"]], rid,
            audio_level=(True, 127) if level_at != -1 else None, transport_seq=0,
        )  # fmt: skip
        diff = [i for i, (a, b) in enumerate(zip(template, zero, strict=True)) if a != b]
        if len(diff) != 2 or diff[1] != diff[0] + 1:
            raise ValueError("ambiguous transport-wide sequence number offset")
        tw_at = diff[0]
    sr_packets = sr_octets = 0
    next_sr = loop.time() + 0.5
    hlen = len(template)
    pt = codec.payloadType or 0
    srtp: _Srtp | None = None
    fields = _HEADER_FIELDS.pack_into
    abs_fields = _ABS_SEND_TIME.pack_into
    protect = _srtp_lib.srtp_protect
    ntp_now = aiortc.clock.current_ntp_time
    track_key, enabled = names["track"], "_enabled"
    octets_key, packets_key = names["octet_count"], names["packet_count"]
    seq = random.getrandbits(15)  # as aiortc: < 32768 to avoid an early wrap-around
    origin = random.getrandbits(32)
    t0, wall0 = loop.time(), time.time()  # the same instant on both clocks
    while True:
        track = state[track_key]
        if track is None or track.readyState != "live":
            raise MediaStreamError
        payloads, offset, due = frames.next()
        when = t0 + due
        if when > loop.time():
            wake = loop.create_future()
            handle = loop.call_at(when, _wake, wake)
            try:
                await wake
            finally:
                handle.cancel()
        elif when < loop.time() - 1.0:  # more than a second behind (a stalled loop)
            behind = loop.time() - when
            t0, wall0 = t0 + behind, wall0 + behind
        if not state[enabled]:
            continue
        if dtls._state is not connected:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        if srtp is None or srtp.session is not dtls._tx_srtp:
            srtp = _Srtp(dtls._tx_srtp)
        pair = nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        sendto, addr = pair.protocol.transport.sendto, pair.remote_addr
        ctx, cdata, buf, lenp = srtp.ctx, srtp.cdata, srtp.buf, srtp.lenp
        timestamp = (origin + offset) & 0xFFFFFFFF
        last = len(payloads) - 1
        level = bytes((frames.level,))
        sent = 0
        for i, payload in enumerate(payloads):
            m_pt = pt | 0x80 if i == last else pt
            n = hlen + len(payload)
            buf[0:hlen] = template
            fields(buf, 1, m_pt, seq, timestamp)
            if level_at != -1:
                buf[level_at : level_at + 1] = level
            if tw_at != -1:
                tw_seq = twcc.seq  # type: ignore[union-attr]
                twcc.seq = (tw_seq + 1) & 0xFFFF  # type: ignore[union-attr]
                buf[tw_at : tw_at + 2] = tw_seq.to_bytes(2, "big")
            if abs_at != -1:
                now = (ntp_now() >> 14) & 0xFFFFFF
                abs_fields(buf, abs_at, now >> 16, now & 0xFFFF)
            buf[hlen:n] = payload
            lenp[0] = n
            rc = protect(ctx, cdata, lenp)
            if rc:
                raise pylibsrtp.Error(f"srtp_protect failed: {rc}")
            sendto(buf[0 : lenp[0]], addr)
            history[seq % _HISTORY] = (seq, m_pt, timestamp, payload)
            seq = (seq + 1) & 0xFFFF
            sent += len(payload)
        # what aiortc's loop leaves for _run_rtcp's sender reports, once per frame; the NTP
        # time is the frame's capture time (when it was due), not when the send returned:
        # media_e2e_ms then spans capture to arrival, the generator's own lateness included
        if not own_sr:
            state[names["ntp_timestamp"]] = unix_to_ntp(wall0 + due)
            state[names["rtp_timestamp"]] = timestamp
            state[octets_key] += sent
            state[packets_key] += len(payloads)
            continue
        sr_octets += sent
        sr_packets += len(payloads)
        if loop.time() >= next_sr:  # aiortc's _run_rtcp: every 0.5-1.5 s; ours every 1 s
            next_sr = loop.time() + 1.0
            info = RtcpSenderInfo(
                ntp_timestamp=unix_to_ntp(wall0 + due),
                rtp_timestamp=timestamp,
                packet_count=sr_packets & 0xFFFFFFFF,
                octet_count=sr_octets & 0xFFFFFFFF,
            )
            send_rtcp(dtls, bytes(RtcpSrPacket(ssrc=ssrc, sender_info=info)))


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
